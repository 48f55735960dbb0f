"""Answers like worker-a1111 (runpod-workers/worker-a1111, src/handler.py): A1111's own txt2img reply, passed on
unchanged: `images` as raw base64, `parameters`, and `info` as a JSON string."""

import json
from typing import Any

import runpod
from tiny_png import png_base64


def handler(job: dict[str, Any]) -> Any:
    job_input = job["input"]
    seed = job_input["seed"]
    count = job_input["batch_size"]
    info = {"seed": seed, "all_seeds": [seed + index for index in range(count)]}
    return {
        "images": [png_base64(seed + index) for index in range(count)],
        "parameters": job_input,
        "info": json.dumps(info),
    }


runpod.serverless.start({"handler": handler})
