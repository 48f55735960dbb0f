"""worker-sdxl-turbo's INPUT_SCHEMA, copied unchanged.

Source: runpod-workers/worker-sdxl-turbo, schemas.py, commit 8b93a56e4529901c54f5a9bbf6d5b3b1051cec54 (2025-08-13).
Licence: MIT, Copyright (c) 2023 runpod-workers (see LICENSE-MIT.txt in this directory).
handler.py validates the input with runpod's rp_validator, seeds torch once and renders `num_images` in one call;
the output labels image i with `seed + i`, although only the batch as a whole is reproducible from `seed`.
"""

# fmt: off
INPUT_SCHEMA = {
    "prompt": {
        "type": str,
        "required": True,
    },
    "negative_prompt": {"type": str, "required": False, "default": None},
    "height": {
        "type": int,
        "required": False,
        "default": 512,
        "constraints": lambda height: height == 512,
    },
    "width": {
        "type": int,
        "required": False,
        "default": 512,
        "constraints": lambda width: width == 512,
    },
    "seed": {"type": int, "required": False, "default": None},
    "num_inference_steps": {
        "type": int,
        "required": False,
        "default": 1,
        "constraints": lambda steps: 1 <= steps <= 8,
    },
    "guidance_scale": {
        "type": float,
        "required": False,
        "default": 0.0,
        "constraints": lambda scale: 0.0 <= scale <= 2.0,
    },
    "num_images": {
        "type": int,
        "required": False,
        "default": 1,
        "constraints": lambda img_count: 5 > img_count > 0,
    },
}
