"""A handler that raises, as a worker does when the GPU runs out of memory: RunPod's SDK turns the exception into a
FAILED job whose error is a JSON string (`error_type`, `error_message`, `error_traceback`, ...)."""

from typing import Any

import runpod


def handler(job: dict[str, Any]) -> Any:
    raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")


runpod.serverless.start({"handler": handler})
