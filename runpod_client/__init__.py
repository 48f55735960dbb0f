"""A typed async client for RunPod Serverless' job API (a leaf: imports none of the bot's packages).

The names below are loaded on first use (PEP 562), so importing one light module (`runpod_client.errors`,
`.models`) does not load the HTTP client and aiohttp with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runpod_client.client import (
        DEFAULT_BASE_URL,
        DEFAULT_RUNSYNC_WAIT_MS,
        DEFAULT_TIMEOUT,
        ResponseHook,
        RunPodClient,
    )
    from runpod_client.errors import (
        AuthenticationError,
        BadRequestError,
        InvalidResponseError,
        NotFoundError,
        NotSupportedError,
        PayloadTooLargeError,
        RateLimitedError,
        ResultLostError,
        RunPodAPIError,
        RunPodConnectionError,
        RunPodError,
        RunPodTimeoutError,
        RunPodTransportError,
        ServerError,
    )
    from runpod_client.local import LOCAL_WORKER_SERVER, LocalWorkerClient, local_worker_key
    from runpod_client.models import (
        Health,
        HealthJobs,
        HealthWorkers,
        Job,
        JobStatus,
        Policy,
        PurgeResult,
        StreamItem,
        StreamResult,
        describe_error,
    )
    from runpod_client.outputs import (
        ExtractedImage,
        Extraction,
        FetchPolicy,
        ImageFetchError,
        InvalidImageError,
        NoImagesError,
        OutputError,
        Progress,
        UnsafeURLError,
        extract_images,
        extract_output,
        parse_progress,
    )
    from runpod_client.retries import NO_RETRY, RetryPolicy

# The module of this package that defines each exported name (the same as the imports above).
_EXPORTS = {
    "client": ("DEFAULT_BASE_URL", "DEFAULT_RUNSYNC_WAIT_MS", "DEFAULT_TIMEOUT", "ResponseHook", "RunPodClient"),
    "errors": (
        "AuthenticationError",
        "BadRequestError",
        "InvalidResponseError",
        "NotFoundError",
        "NotSupportedError",
        "PayloadTooLargeError",
        "RateLimitedError",
        "ResultLostError",
        "RunPodAPIError",
        "RunPodConnectionError",
        "RunPodError",
        "RunPodTimeoutError",
        "RunPodTransportError",
        "ServerError",
    ),
    "local": ("LOCAL_WORKER_SERVER", "LocalWorkerClient", "local_worker_key"),
    "models": (
        "Health",
        "HealthJobs",
        "HealthWorkers",
        "Job",
        "JobStatus",
        "Policy",
        "PurgeResult",
        "StreamItem",
        "StreamResult",
        "describe_error",
    ),
    "outputs": (
        "ExtractedImage",
        "Extraction",
        "FetchPolicy",
        "ImageFetchError",
        "InvalidImageError",
        "NoImagesError",
        "OutputError",
        "Progress",
        "UnsafeURLError",
        "extract_images",
        "extract_output",
        "parse_progress",
    ),
    "retries": ("NO_RETRY", "RetryPolicy"),
}
_MODULES = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES])


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RUNSYNC_WAIT_MS",
    "DEFAULT_TIMEOUT",
    "LOCAL_WORKER_SERVER",
    "NO_RETRY",
    "AuthenticationError",
    "BadRequestError",
    "ExtractedImage",
    "Extraction",
    "FetchPolicy",
    "Health",
    "HealthJobs",
    "HealthWorkers",
    "ImageFetchError",
    "InvalidImageError",
    "InvalidResponseError",
    "Job",
    "JobStatus",
    "LocalWorkerClient",
    "NoImagesError",
    "NotFoundError",
    "NotSupportedError",
    "OutputError",
    "PayloadTooLargeError",
    "Policy",
    "Progress",
    "PurgeResult",
    "RateLimitedError",
    "ResponseHook",
    "ResultLostError",
    "RetryPolicy",
    "RunPodAPIError",
    "RunPodClient",
    "RunPodConnectionError",
    "RunPodError",
    "RunPodTimeoutError",
    "RunPodTransportError",
    "ServerError",
    "StreamItem",
    "StreamResult",
    "UnsafeURLError",
    "describe_error",
    "extract_images",
    "extract_output",
    "local_worker_key",
    "parse_progress",
]
