"""Answers like worker-sdxl-turbo (runpod-workers/worker-sdxl-turbo, handler.py): each image as raw base64 with its
seed, the generation time and the parameters."""

from typing import Any

import runpod
from tiny_png import png_base64


def handler(job: dict[str, Any]) -> Any:
    job_input = job["input"]
    seed = job_input["seed"]
    images = [{"image": png_base64(seed + index), "seed": seed + index} for index in range(job_input["num_images"])]
    return {"images": images, "generation_time": 0.01, "parameters": job_input}


runpod.serverless.start({"handler": handler})
