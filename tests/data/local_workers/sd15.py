"""Answers like worker-stable_diffusion_v1 (runpod-workers/worker-stable_diffusion_v1, src/rp_handler.py `run`): a
list of `{"image", "seed"}`, raw base64 without a bucket, image i labelled seed + i although one seed renders the
batch."""

from typing import Any

import runpod
from tiny_png import png_base64


def handler(job: dict[str, Any]) -> Any:
    job_input = job["input"]
    seed = job_input["seed"]
    return [{"image": png_base64(seed + index), "seed": seed + index} for index in range(job_input["num_outputs"])]


runpod.serverless.start({"handler": handler})
