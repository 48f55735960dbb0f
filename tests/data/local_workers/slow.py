"""A worker that takes a while (an async handler, so the server keeps answering meanwhile), answering like
worker-sdxl (runpod-workers/worker-sdxl, handler.py): for the tests of cancelling a running job."""

import asyncio
from typing import Any

import runpod
from tiny_png import png_base64

# Long enough that a loaded machine (the suite on several processes) still cancels it while it runs; no test waits
# for it to end.
SECONDS = 10.0


async def handler(job: dict[str, Any]) -> Any:
    await asyncio.sleep(SECONDS)
    seed = job["input"]["seed"]
    image = f"data:image/png;base64,{png_base64(seed)}"
    return {"images": [image], "image_url": image, "seed": seed}


runpod.serverless.start({"handler": handler})
