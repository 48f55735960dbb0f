"""Answers like the older runpod-worker-comfy (blib-la/runpod-worker-comfy, src/rp_handler.py `handler`): the image
as base64 in `message`, with `"status": "success"`."""

from typing import Any

import runpod
from tiny_png import png_base64


def handler(job: dict[str, Any]) -> Any:
    seed = job["input"]["workflow"]["3"]["inputs"]["seed"]
    return {"status": "success", "message": png_base64(seed), "refresh_worker": False}


runpod.serverless.start({"handler": handler})
