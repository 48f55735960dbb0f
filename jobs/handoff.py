"""A finished RunPod job object in hand (a webhook's payload, a /runsync reply): finish the job from it here, or
make the job due for whichever poller comes first.

With a finisher (this process's `Poller`), the job of a finished job object is finished from it, with no
`/status` call: the job's lease is taken (a poller busy with it can no longer commit) and the finisher records the
outcome and delivers. Without one (a gateway process), or for a live job object, the job is made due at once, so a
poller checks `/status`. A job still submitting is due as soon as its RunPod id is stored; a job already finishing
is left to its delivery, so a repeated object delivers nothing twice.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Protocol

from runpod_client import Job
from storage.store import Claimed, JobStore

log = logging.getLogger(__name__)

# How long this process holds a job it finishes from a job object in hand (extracting the images and recording the
# outcome). Shorter than RunPod's 1-minute retention of a /runsync result, so a process that dies holding one leaves
# another poller time to fetch it with /status.
DEFAULT_TAKE_LEASE_MS = 30_000


class Finisher(Protocol):
    """What finishes jobs in this process (the `Poller`)."""

    def adopt(self, claim: Claimed, status: Job) -> None: ...

    def wake(self) -> None: ...


class HandoffOutcome(StrEnum):
    """What handing over a job object did."""

    FINISHING = "finishing"  # this process finishes the job from the object
    DUE = "due"  # the job is due at once: a poller checks its /status
    PENDING = "pending"  # still submitting: due at once when its RunPod id is stored
    IGNORED = "ignored"  # already finishing or delivered, or no longer known


class Handoff:
    """Hands RunPod job objects to this process's finisher, or makes their jobs due for other processes' pollers.

    The finisher is attached once this process has a poller (it is built after the core), or never (a gateway).
    """

    def __init__(self, store: JobStore, *, finisher: Finisher | None = None, lease_ms: int = DEFAULT_TAKE_LEASE_MS):
        self.store = store
        self.finisher = finisher
        self.lease_ms = lease_ms

    def attach(self, finisher: Finisher) -> None:
        """Finish job objects in `finisher` from now on."""
        self.finisher = finisher

    async def job_changed(self, endpoint_id: str, jid: str, status: Job) -> HandoffOutcome:
        """Finish the job from `status` (finished, with a finisher) or make it due at once."""
        if self.finisher is not None and status.is_finished:
            taken = await self.store.take_for_webhook(endpoint_id, jid, lease_ms=self.lease_ms)
            if taken.claimed is not None:
                return await self._finish(taken.claimed, status)
            return _outcome(taken.status)
        made = await self.store.make_due_for_webhook(endpoint_id, jid)
        if made.status == "due" and self.finisher is not None:
            self.finisher.wake()
        return _outcome(made.status)

    async def _finish(self, claim: Claimed, status: Job) -> HandoffOutcome:
        if self.finisher is None:  # pragma: no cover - checked by the caller
            raise RuntimeError("no finisher")
        if claim.job.runpod_id is not None and claim.job.runpod_id != status.id:
            # The object names another RunPod job than the one recorded: trust /status instead.
            log.warning(
                "job %s: job object for RunPod job %s, expected %s", claim.job.jid, status.id, claim.job.runpod_id
            )
            await self.store.release([claim])
            self.finisher.wake()
            return HandoffOutcome.DUE
        log.debug("job %s: RunPod says %s", claim.job.jid, status.status.value)
        self.finisher.adopt(claim, status)
        return HandoffOutcome.FINISHING


def _outcome(status: str) -> HandoffOutcome:
    if status == "due":
        return HandoffOutcome.DUE
    if status == "submitting":
        return HandoffOutcome.PENDING
    return HandoffOutcome.IGNORED
