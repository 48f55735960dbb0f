"""Answers like worker-sdxl (runpod-workers/worker-sdxl, handler.py `generate_image`): the images as PNG data URIs
(URLs when a bucket is set), `image_url` the first of them, and the one seed of the batch."""

from typing import Any

import runpod
from tiny_png import png_base64


def handler(job: dict[str, Any]) -> Any:
    job_input = job["input"]
    seed = job_input["seed"]
    images = [f"data:image/png;base64,{png_base64(seed + index)}" for index in range(job_input["num_images"])]
    return {"images": images, "image_url": images[0], "seed": seed}


runpod.serverless.start({"handler": handler})
