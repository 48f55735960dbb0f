"""The `Notifier` protocol: how the core tells the outside world (Discord, the terminal) about jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from storage.models import JobState, TrackedJob

if TYPE_CHECKING:
    # Only named in annotations: the protocol needs no HTTP client (the command line's `status` reads it).
    from runpod_client.outputs import ExtractedImage


@dataclass(frozen=True)
class ImageCap:
    """The worker returned more images than the model allows: only the first `allowed` are delivered."""

    returned: int
    allowed: int

    @property
    def dropped(self) -> int:
        return self.returned - self.allowed


@dataclass(frozen=True)
class JobResult:
    """A finished job: its outcome, and either its images or a reason a member can read.

    `capped` says that images were left out because the worker returned more than the model allows. `undelivered`
    is set when delivery gave up: why the result could not be delivered; the notifier then shows the outcome
    without posting anything.
    """

    outcome: JobState
    images: Sequence[ExtractedImage] = ()
    reason: str | None = None
    capped: ImageCap | None = None
    undelivered: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What a notifier posted for a finished job (stored with the record)."""

    message_ids: list[int] = field(default_factory=list)


class DeliveryFailed(Exception):
    """A delivery attempt failed; the message says why in words a member can read.

    `final`: the destination refused this result, so sending it again cannot succeed (the poller gives up at once
    instead of retrying); otherwise the failure may pass (a server error, a time-out) and the poller retries.
    """

    def __init__(self, reason: str, *, final: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final


class Notifier(Protocol):
    """Implemented by delivery (the Discord cog, the CLI).

    Semantics the poller guarantees: `job_updated` is called when a live job's state or progress changed (best
    effort: a failure is logged and forgotten). `job_finished` is called until one call returns for each job: if the
    process dies during it, or it raises, it is called again later, possibly by another process. So it must be
    idempotent: `job.result_message_ids` holds what an earlier attempt recorded with `JobStore.update`. When it
    raises `DeliveryFailed(final=True)`, or has failed `max_delivery_attempts` times, the poller calls it once more
    with `result.undelivered` set (best effort) so the outcome is shown, and ends the job.
    """

    async def job_updated(self, job: TrackedJob) -> None: ...

    async def job_finished(self, job: TrackedJob, result: JobResult) -> Delivery: ...
