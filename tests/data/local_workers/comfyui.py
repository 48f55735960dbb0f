"""Answers like worker-comfyui 5.x (runpod-workers/worker-comfyui, handler.py `handler`): `images` as a list of
`{"filename", "type": "base64", "data"}`."""

from typing import Any

import runpod
from tiny_png import png_base64


def handler(job: dict[str, Any]) -> Any:
    workflow = job["input"]["workflow"]
    seed = workflow["3"]["inputs"]["seed"]
    return {"images": [{"filename": "ComfyUI_00001_.png", "type": "base64", "data": png_base64(seed)}]}


runpod.serverless.start({"handler": handler})
