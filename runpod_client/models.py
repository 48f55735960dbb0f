"""Pydantic models of RunPod's replies. Unknown fields are kept; unknown states become `JobStatus.UNKNOWN`."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# A reason shown to a user is cut to this length.
MAX_ERROR_MESSAGE_CHARS = 500
# Each of a failure's `details` is cut to this length, so that several fit in the reason.
MAX_DETAIL_CHARS = 200
TRACEBACK_MARKER = "Traceback (most recent call last)"
# Keys that hold the human-readable reason in a dict-shaped error, best first.
ERROR_MESSAGE_KEYS = ("error_message", "message", "error", "detail", "msg")


class JobStatus(StrEnum):
    """A job's state at RunPod. Anything RunPod adds later (or the documented `RUNNING`) is UNKNOWN."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def _missing_(cls, value: object) -> JobStatus:
        return cls.UNKNOWN

    @property
    def is_finished(self) -> bool:
        """Whether the job will not change any more (until a /retry)."""
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT})

_API_MODEL = ConfigDict(extra="allow", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


class Job(BaseModel):
    """A job as /run, /runsync, /status, /cancel and /retry return it. Only `id` and `status` are always there."""

    model_config = _API_MODEL

    id: str
    status: JobStatus
    delay_time_ms: int | None = Field(default=None, alias="delayTime")
    execution_time_ms: int | None = Field(default=None, alias="executionTime")
    output: Any = None
    error: Any = None
    worker_id: str | None = Field(default=None, alias="workerId")
    retries: int | None = None

    @field_validator("delay_time_ms", "execution_time_ms", mode="before")
    @classmethod
    def _whole_milliseconds(cls, value: Any) -> Any:
        # Some replies carry fractional milliseconds; whole ones are precise enough.
        return round(value) if isinstance(value, float) else value

    @property
    def is_finished(self) -> bool:
        """Whether the job has finished (COMPLETED, FAILED, CANCELLED or TIMED_OUT)."""
        return self.status.is_finished

    @property
    def error_message(self) -> str | None:
        """A short human-readable reason for a failure, never a traceback; None when there is no error.

        A worker's `details` follow the error: worker-comfyui fails with `{"error": ..., "details": [...]}`, and the
        RunPod SDK moves `error` out of that result, leaving `output: {"details": [...]}`.
        """
        if self.error is None:
            return None
        return describe_error(self.error, details=[*_details(self.error), *_details(self.output)])

    def to_api(self) -> dict[str, Any]:
        """The job as RunPod spells it (camelCase names, extra fields included, unset fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class HealthJobs(BaseModel):
    """Job counts from /health."""

    model_config = _API_MODEL

    completed: int = 0
    failed: int = 0
    in_progress: int = Field(default=0, alias="inProgress")
    in_queue: int = Field(default=0, alias="inQueue")
    retried: int = 0

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_zero(cls, value: Any) -> Any:
        return 0 if value is None else value


class HealthWorkers(BaseModel):
    """Worker counts from /health."""

    model_config = _API_MODEL

    idle: int = 0
    initializing: int = 0
    ready: int = 0
    running: int = 0
    throttled: int = 0
    unhealthy: int = 0

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_zero(cls, value: Any) -> Any:
        return 0 if value is None else value


class Health(BaseModel):
    """The /health reply: what the queue and the workers are doing. Every count defaults to 0."""

    model_config = _API_MODEL

    jobs: HealthJobs = Field(default_factory=HealthJobs)
    workers: HealthWorkers = Field(default_factory=HealthWorkers)

    @field_validator("jobs", "workers", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class Policy(BaseModel):
    """Execution policy sent with /run: times in milliseconds; serialised with RunPod's names, unset fields left out."""

    model_config = _API_MODEL

    ttl: int | None = None
    execution_timeout: int | None = Field(default=None, alias="executionTimeout")
    low_priority: bool | None = Field(default=None, alias="lowPriority")

    def to_api(self) -> dict[str, Any]:
        """The policy object of a /run body."""
        return self.model_dump(mode="json", exclude_none=True)


class PurgeResult(BaseModel):
    """The /purge-queue reply."""

    model_config = _API_MODEL

    removed: int = 0
    status: str | None = None


class StreamItem(BaseModel):
    """One entry of a /stream reply."""

    model_config = _API_MODEL

    output: Any = None


class StreamResult(BaseModel):
    """The /stream reply: the job's state and the outputs it has streamed since the last call."""

    model_config = _API_MODEL

    status: JobStatus = JobStatus.UNKNOWN
    stream: list[StreamItem] = Field(default_factory=list)

    @field_validator("stream", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def outputs(self) -> list[Any]:
        """The streamed outputs, in order."""
        return [item.output for item in self.stream]


def describe_error(error: Any, details: list[str] | None = None) -> str | None:
    """A short reason from any shape of `error` (plain text, JSON-encoded text, a dict, or a list), followed by the
    worker's `details`, each shortened."""
    text = _describe(error, depth=0)
    if details:
        text = f"{text}: {'; '.join(details)}" if text else "; ".join(details)
    if text is None:
        return None
    text = " ".join(text.split())
    if not text:
        return None
    if len(text) > MAX_ERROR_MESSAGE_CHARS:
        return text[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"
    return text


def _details(value: Any) -> list[str]:
    """The `details` a worker attached to its failure (a list, or one item), each described and shortened."""
    if not isinstance(value, dict) or "details" not in value:
        return []
    items = value["details"] if isinstance(value["details"], list) else [value["details"]]
    found = []
    for item in items:
        text = _describe(item, depth=1)
        if text:
            text = " ".join(text.split())
            found.append(text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…")
    return found


def _describe(error: Any, depth: int) -> str | None:
    if error is None or depth > 4:
        return None
    if isinstance(error, str):
        return _describe_text(error, depth)
    if isinstance(error, dict):
        for key in ERROR_MESSAGE_KEYS:
            if key in error:
                found = _describe(error[key], depth + 1)
                if found:
                    return found
        if "error_type" in error:
            return str(error["error_type"])
        return None
    if isinstance(error, list):
        parts = [part for part in (_describe(item, depth + 1) for item in error) if part]
        return "; ".join(parts) or None
    return str(error)


def _describe_text(text: str, depth: int) -> str | None:
    stripped = text.strip()
    # A handler that raised reports a JSON-encoded dict; some workers JSON-encode a list.
    if stripped[:1] in ("{", "["):
        try:
            decoded = json.loads(stripped)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict | list):
            return _describe(decoded, depth + 1)
    if TRACEBACK_MARKER in stripped:
        # The last line of a traceback names the exception; the frames above it are noise to a user.
        lines = [line.strip() for line in stripped.splitlines() if line.strip()]
        return lines[-1] if lines else None
    return stripped or None
