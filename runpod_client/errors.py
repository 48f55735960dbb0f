"""Errors callers catch by meaning. No message, repr or attribute ever holds the API key."""

from __future__ import annotations

import json
from typing import Any

# An error message quotes at most this much of a reply body.
MAX_BODY_SUMMARY_CHARS = 200

STATUS_BAD_REQUEST = 400
STATUS_UNAUTHORIZED = 401
STATUS_FORBIDDEN = 403
STATUS_NOT_FOUND = 404
STATUS_PAYLOAD_TOO_LARGE = 413
STATUS_RATE_LIMITED = 429
STATUS_SERVER_ERROR_MIN = 500


class RunPodError(Exception):
    """Base of every error the RunPod client raises."""


class RunPodAPIError(RunPodError):
    """RunPod answered with an error status; `body` is the reply parsed as JSON, or its text."""

    def __init__(self, status: int, body: Any, *, operation: str = "request") -> None:
        self.status = status
        self.body = body
        self.operation = operation
        super().__init__(f"RunPod {operation} failed with HTTP {status}: {summarize_body(body)}")


class BadRequestError(RunPodAPIError):
    """400: RunPod rejected the request (malformed input, a policy out of range, a job that cannot be retried)."""


class AuthenticationError(RunPodAPIError):
    """401 or 403: the API key is wrong or has no access to this endpoint."""


class NotFoundError(RunPodAPIError):
    """404: unknown endpoint, or a job that never existed or whose result has expired."""


class PayloadTooLargeError(RunPodAPIError):
    """413: the request body is over RunPod's size limit (10 MB for /run, 20 MB for /runsync)."""


class RateLimitedError(RunPodAPIError):
    """429: over RunPod's rate limit; `retry_after` is the server's hint in seconds, when it gave one.

    A 429 means RunPod did not accept the request, so even a /run may be sent again.
    """

    def __init__(self, status: int, body: Any, *, operation: str = "request", retry_after: float | None = None) -> None:
        super().__init__(status, body, operation=operation)
        self.retry_after = retry_after


class ServerError(RunPodAPIError):
    """5xx: RunPod or the worker failed. After a /run, the job may or may not have been created."""


class InvalidResponseError(RunPodAPIError):
    """A success status whose body is not the JSON the operation returns (a proxy page, a truncated reply)."""


class NotSupportedError(RunPodError):
    """The server has no such operation: RunPod's local worker server (`--rp_serve_api`) has no /cancel, /health,
    /purge-queue or /retry. Nothing was sent."""

    def __init__(self, operation: str, server: str) -> None:
        super().__init__(f"{server} has no /{operation}")
        self.operation = operation
        self.server = server


class ResultLostError(NotFoundError):
    """RunPod's local worker server no longer knows the job. It runs a job during the first /status request and
    forgets it once that reply is sent, so the job ran and its one reply was lost (or the server restarted)."""

    def __init__(self, job_id: str, body: Any, *, operation: str = "status") -> None:
        RunPodError.__init__(
            self,
            f"RunPod's local worker server no longer knows job {job_id}: it gives a job's result only once, in the "
            "reply to the first status request, and that reply was lost (or the server was restarted)",
        )
        self.status = STATUS_NOT_FOUND
        self.body = body
        self.operation = operation
        self.job_id = job_id


class RunPodTransportError(RunPodError):
    """The exchange with RunPod broke before a complete reply arrived.

    `maybe_sent` is False only when the request certainly never reached RunPod (connection refused, DNS failure,
    connect timeout); when True, a /run may have started a job.
    """

    def __init__(self, message: str, *, operation: str = "request", maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.operation = operation
        self.maybe_sent = maybe_sent


class RunPodConnectionError(RunPodTransportError):
    """The connection could not be made, or was reset or closed before the reply was complete."""


class RunPodTimeoutError(RunPodTransportError):
    """No complete reply within the timeout."""


def summarize_body(body: Any) -> str:
    """A one-line excerpt of a reply body for a message: its `error` field when it has one."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = body["error"]
    elif isinstance(body, str):
        text = body
    else:
        text = json.dumps(body, default=str)
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    if len(text) > MAX_BODY_SUMMARY_CHARS:
        return text[: MAX_BODY_SUMMARY_CHARS - 1] + "…"
    return text


def api_error(status: int, body: Any, *, operation: str, retry_after: float | None = None) -> RunPodAPIError:
    """The error class that names what an HTTP error status means."""
    if status == STATUS_BAD_REQUEST:
        return BadRequestError(status, body, operation=operation)
    if status in (STATUS_UNAUTHORIZED, STATUS_FORBIDDEN):
        return AuthenticationError(status, body, operation=operation)
    if status == STATUS_NOT_FOUND:
        return NotFoundError(status, body, operation=operation)
    if status == STATUS_PAYLOAD_TOO_LARGE:
        return PayloadTooLargeError(status, body, operation=operation)
    if status == STATUS_RATE_LIMITED:
        return RateLimitedError(status, body, operation=operation, retry_after=retry_after)
    if status >= STATUS_SERVER_ERROR_MIN:
        return ServerError(status, body, operation=operation)
    return RunPodAPIError(status, body, operation=operation)
