"""worker-sdxl's INPUT_SCHEMA, copied unchanged.

Source: runpod-workers/worker-sdxl, schemas.py, commit 94b18ff48c2a7051cac10a447cb88a20aaa3c3b2 (2025-06-13).
Licence: MIT, Copyright (c) 2025 RunPod (see LICENSE-MIT.txt in this directory).
handler.py validates `job["input"]` against it with runpod's rp_validator and passes `num_images` to the pipeline as
`num_images_per_prompt`; one `torch.Generator` seeded once renders the whole batch, and the output reports that one
`seed` (`{"images": [...], "image_url": <first>, "seed": n}`).
img2img (same handler.py): a non-empty `image_url` is opened with diffusers' `load_image` (http(s) URLs and files
only, no data URI) and only the refiner runs, with `strength` and `refiner_inference_steps`, drawing one image at the
source's size.
"""

# fmt: off
INPUT_SCHEMA = {
    'prompt': {
        'type': str,
        'required': False,
    },
    'negative_prompt': {
        'type': str,
        'required': False,
        'default': None
    },
    'height': {
        'type': int,
        'required': False,
        'default': 1024
    },
    'width': {
        'type': int,
        'required': False,
        'default': 1024
    },
    'seed': {
        'type': int,
        'required': False,
        'default': None
    },
    'scheduler': {
        'type': str,
        'required': False,
        'default': 'DDIM'
    },
    'num_inference_steps': {
        'type': int,
        'required': False,
        'default': 25
    },
    'refiner_inference_steps': {
        'type': int,
        'required': False,
        'default': 50
    },
    'guidance_scale': {
        'type': float,
        'required': False,
        'default': 7.5
    },
    'strength': {
        'type': float,
        'required': False,
        'default': 0.3
    },
    'image_url': {
        'type': str,
        'required': False,
        'default': None
    },
    'num_images': {
        'type': int,
        'required': False,
        'default': 1,
        'constraints': lambda img_count: 3 > img_count > 0
    },
    'high_noise_frac': {
        'type': float,
        'required': False,
        'default': None
    },
}
