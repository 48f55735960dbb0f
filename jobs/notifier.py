"""The `Notifier` protocol: how the core tells the outside world (Discord, the terminal) about jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from runpod_client.outputs import ExtractedImage
from storage.models import JobState, TrackedJob


@dataclass(frozen=True)
class JobResult:
    """A finished job: its outcome, and either its images or a reason a member can read."""

    outcome: JobState
    images: Sequence[ExtractedImage] = ()
    reason: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What a notifier posted for a finished job (stored with the record)."""

    message_ids: list[int] = field(default_factory=list)


class Notifier(Protocol):
    """Implemented by delivery (the Discord cog, the CLI).

    Semantics the poller guarantees: `job_updated` is called when a live job's state or progress changed (best
    effort: a failure is logged and forgotten). `job_finished` is called until one call returns for each job: if the
    process dies during it, or it raises, it is called again later, possibly by another process. So it must be
    idempotent: `job.result_message_ids` holds what an earlier attempt recorded with `JobStore.update`.
    """

    async def job_updated(self, job: TrackedJob) -> None: ...

    async def job_finished(self, job: TrackedJob, result: JobResult) -> Delivery: ...
