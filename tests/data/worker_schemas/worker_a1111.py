"""A schema for worker-a1111's input, written for these tests (the worker has none).

worker-a1111 (runpod-workers/worker-a1111, src/handler.py, commit 022c30933c1fb38fb955a104cd2324ff70cd7446, MIT)
posts `job["input"]` unchanged to Automatic1111's `/sdapi/v1/txt2img` (A1111 v1.9.3, per its Dockerfile) and
returns A1111's reply, `{"images": [base64...], "parameters": {...}, "info": "<JSON>"}`. It documents no limits.
The names, types and defaults below are those of A1111's `StableDiffusionProcessing` fields the bot sends
(AUTOMATIC1111/stable-diffusion-webui, modules/processing.py, commit 0027ce1f6e58c5f4279173e468a60aef420babfe; facts
only, no code copied). A1111 gives image i of a batch the seed `seed + i` (`p.all_seeds`) and renders each from its
own seed, so per-image seeds are true there.
"""

from typing import Any

INPUT_SCHEMA: dict[str, Any] = {
    "prompt": {"type": str, "required": False, "default": ""},
    "negative_prompt": {"type": str, "required": False, "default": ""},
    "seed": {"type": int, "required": False, "default": -1},
    "batch_size": {"type": int, "required": False, "default": 1},
    "steps": {"type": int, "required": False, "default": 50},
    "cfg_scale": {"type": float, "required": False, "default": 7.0},
    "width": {"type": int, "required": False, "default": 512},
    "height": {"type": int, "required": False, "default": 512},
}
