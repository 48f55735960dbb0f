"""The tracked job record as stored in Redis, and its states."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobState(StrEnum):
    """Where a job is in its life. RunPod's status is the truth; ours follows it."""

    SUBMITTING = "SUBMITTING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    EXPIRED = "EXPIRED"
    SUBMIT_UNKNOWN = "SUBMIT_UNKNOWN"
    DELIVERED = "DELIVERED"

    @property
    def is_live(self) -> bool:
        """Still submitting, queued or running at RunPod."""
        return self in LIVE_STATES

    @property
    def is_outcome(self) -> bool:
        """A final result that is yet to be (or has been) delivered."""
        return self in OUTCOMES


LIVE_STATES = frozenset({JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING})
OUTCOMES = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMED_OUT,
        JobState.EXPIRED,
        JobState.SUBMIT_UNKNOWN,
    }
)


class Requester(BaseModel):
    """Who asked for the job and where the answer goes."""

    model_config = ConfigDict(frozen=True)

    user_id: int
    guild_id: int | None = None
    channel_id: int | None = None
    # Whether the place the result is shown is age-restricted (Discord's channel flag, told by the front end; a DM
    # is not one): where the NSFW rules allow NSFW prompts (`jobs.nsfw`). Not stored with the job.
    age_restricted: bool = False


class Press(BaseModel):
    """One press of a button: who pressed which button of which message, where, named by the front end's opaque
    strings (Discord's ids and custom_id; the core knows no Discord). The same member pressing the same button of
    the same message again is the same press."""

    model_config = ConfigDict(frozen=True)

    guild: str
    member: str
    message: str
    button: str


class TrackedJob(BaseModel):
    """One job as stored in its Redis hash. Never holds image bytes."""

    jid: str
    state: JobState
    endpoint_id: str
    model: str
    user_id: int
    guild_id: int | None = None
    channel_id: int | None = None
    request_id: str | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    runpod_id: str | None = None
    runpod_status: str | None = None
    outcome: JobState | None = None
    card_message_id: int | None = None
    result_message_ids: list[int] = Field(default_factory=list)
    progress: str | None = None
    delay_time_ms: int | None = None
    execution_time_ms: int | None = None
    worker_id: str | None = None
    poll_count: int = 0
    error: str | None = None
    # The policy.ttl the job's /run carried and the longest it may wait in RunPod's queue (ms); None on records
    # written before they were stored.
    ttl_ms: int | None = None
    max_queue_wait_ms: int | None = None
    # The unbroken run of failed /status checks: how many, and since when (cleared by any good answer).
    status_errors: int = 0
    status_error_since: datetime | None = None
    cancel_requested_by: int | None = None
    # RunPod's answer to the cancel, for the card: `accepted`, `gone`, `finished:<status>` or `refused:<why>`.
    cancel_outcome: str | None = None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    delivered_at: datetime | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    # The GPU time (ms) admission reserved under a budget, in the member's UTC day and the server's UTC month named
    # here (storage/usage.py's periods); its end settles it (`FinalizeBegin`).
    reserved_ms: int = 0
    reserved_day: str | None = None
    reserved_month: str | None = None

    @property
    def requester(self) -> Requester:
        return Requester(user_id=self.user_id, guild_id=self.guild_id, channel_id=self.channel_id)

    @property
    def final_state(self) -> JobState:
        """The outcome for a delivered job, otherwise the current state."""
        return self.outcome if self.state is JobState.DELIVERED and self.outcome else self.state

    @classmethod
    def from_hash(
        cls, raw: Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]
    ) -> TrackedJob:
        """Build from HGETALL's reply."""
        fields = {_text(key): _text(value) for key, value in raw.items()}
        return cls.model_validate({key: decode_field(key, value) for key, value in fields.items()})


JSON_FIELDS = frozenset({"request", "result_message_ids", "extra"})
DATETIME_FIELDS = frozenset(
    {"created_at", "updated_at", "submitted_at", "started_at", "finished_at", "delivered_at", "status_error_since"}
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode_field(name: str, value: str) -> Any:
    """A hash field's stored text to the model's value; empty text means unset."""
    if value == "":
        return None
    if name in JSON_FIELDS:
        return json.loads(value)
    if name in DATETIME_FIELDS:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    return value


def encode_field(name: str, value: Any) -> str:
    """A model value to the text stored in the hash; datetimes as epoch milliseconds, None as empty."""
    if value is None:
        return ""
    if name in JSON_FIELDS:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, datetime):
        return str(to_ms(value))
    if isinstance(value, StrEnum):
        return value.value
    return str(value)


def encode_fields(values: dict[str, Any]) -> dict[str, str]:
    return {name: encode_field(name, value) for name, value in values.items()}


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not stored: use timezone-aware ones")
    return int(moment.timestamp() * 1000)
