"""`JobHandler`: what happens to one claimed job: poll it, move its state, finish it, deliver it, or give it up.

Every write goes through the poller's `Writer` (one round trip per cycle) and returns its op's own result; a `None`
(or false) result means the lease was lost to another process, which then owns the job. Every job ends: an unbroken
run of failed `/status` checks has a bounded life (by kind of error), a job no worker starts within its queue wait
limit is cancelled, and no job stays live past its policy.ttl plus `deadline_margin_ms`, whatever RunPod answers;
each ends FAILED with its reason, after one `/cancel` at RunPod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from jobs.defaults import MAX_POLICY_TTL_MS
from jobs.labels import DELIVERY_FAILED_FIELD
from jobs.notifier import DeliveryFailed, ImageCap, JobResult, Notifier
from jobs.policy import Pace
from jobs.presets import MAX_IMAGES_PER_JOB, InvalidRequestError, ModelCatalog
from jobs.reasons import (
    Reason,
    StatusErrorKind,
    classify_status_error,
    deadline_reason,
    default_reason,
    delivery_gave_up,
    expired_reason,
    queue_wait_reason,
    status_error_reason,
    still_reported_as,
    worker_failure_reason,
)
from jobs.service import CancelOutcome, cancel_at_runpod
from jobs.usage import charge_of, metric_model
from jobs.writer import Writer
from runpod_client import Job, JobStatus, NotFoundError, RateLimitedError, RunPodClient, RunPodError
from runpod_client.outputs import FetchPolicy, OutputError, extract_output, parse_progress
from storage.models import JobState, TrackedJob, to_ms
from storage.store import Claimed, FinalizeBegin, FinalizeCommit, RecordError, Reschedule

if TYPE_CHECKING:
    from jobs.metrics import Metrics
    from jobs.poller import PollerSettings

log = logging.getLogger(__name__)

# The /cancel sent when a job is given up is one attempt, cut short well within the claim lease.
GIVE_UP_CANCEL_TIMEOUT_S = 10.0
# A delivery keeps its job for at most this many delivery leases: a notifier that hangs (rather than dies) must not
# hold the job for ever; after that, another process delivers it again, as after a crash.
MAX_DELIVERY_LEASES = 5

FINISHED_STATES: Mapping[JobStatus, JobState] = {
    JobStatus.COMPLETED: JobState.COMPLETED,
    JobStatus.FAILED: JobState.FAILED,
    JobStatus.CANCELLED: JobState.CANCELLED,
    JobStatus.TIMED_OUT: JobState.TIMED_OUT,
}


@dataclass
class PollerStats:
    """What this poller did since it started (for benchmarks and metrics)."""

    cycles: int = 0
    busy_cycles: int = 0
    claimed: int = 0
    status_calls: int = 0
    # What the /status calls found: still queued, running, or finished.
    queued_polls: int = 0
    running_polls: int = 0
    final_polls: int = 0
    deferred_first_polls: int = 0
    write_flushes: int = 0
    writes: int = 0
    webhook_jobs: int = 0


class ServerClock:
    """The Redis server's clock (every stored time is on it), from the offset seen at the last claim."""

    def __init__(self) -> None:
        self._offset_ms = 0.0

    def sync(self, server_now_ms: int) -> None:
        self._offset_ms = server_now_ms - time.time() * 1000

    def now_ms(self) -> float:
        return time.time() * 1000 + self._offset_ms


class Leases:
    """The leases this poller holds, by job: what `Poller.stop()` gives back for other processes."""

    def __init__(self) -> None:
        self.held: dict[str, Claimed] = {}

    def hold(self, claim: Claimed | None) -> None:
        if claim is not None:
            self.held[claim.job.jid] = claim

    def let_go(self, claim: Claimed) -> None:
        """Forget the job's lease unless a newer one replaced it."""
        held = self.held.get(claim.job.jid)
        if held is not None and held.token <= claim.token:
            self.held.pop(claim.job.jid, None)


class KeptLease:
    """Keeps a job's lease while slow work runs (`async with`): whenever less than half of `lease_ms` is left, the
    lease is renewed to `lease_ms` in the coalesced writes. `claim` is then the newest lease, or None once it was
    lost (another process took the job: nothing more may be written under it).

    Without it, work that outlasts the lease (a /status reply, image downloads or a delivery slowed by a loaded
    process, a slow image host, Discord's rate limits) lets another process claim the job meanwhile: that work is
    thrown away and done again (a slow enough job is never delivered), or a delivery is posted twice. With `keep_ms`,
    the job is kept no longer than that in all (for work that may hang; /status calls and downloads have timeouts).
    """

    def __init__(
        self,
        claim: Claimed,
        lease_ms: int,
        *,
        writer: Writer,
        leases: Leases,
        clock: ServerClock,
        keep_ms: int | None = None,
    ) -> None:
        self.claim: Claimed | None = claim
        self._lease_ms = lease_ms
        self._keep_ms = keep_ms
        self._started = time.monotonic()
        self._writer = writer
        self._leases = leases
        self._clock = clock
        self._done = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._renewing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> KeptLease:
        # A timer, not a task: work done in time (the usual case) costs no task, and nothing to wait for at the end,
        # so its write still joins the cycle's batch (`Writer` flushes once the last /status call has ended).
        self._timer = asyncio.get_running_loop().call_later(self._renew_in_s(), self._start)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._done.set()
        if self._timer is not None:
            self._timer.cancel()
        # A renewal in flight is waited for, not cancelled: its write may land, and its new token must be known.
        if self._renewing is not None:
            await self._renewing

    def _start(self) -> None:
        if not self._done.is_set():
            self._renewing = asyncio.create_task(self._renew())

    def _renew_in_s(self) -> float:
        """How long until half of the lease is left."""
        left_ms = self.claim.token - self._clock.now_ms() if self.claim is not None else 0.0
        return max(0.0, left_ms - self._lease_ms / 2) / 1000

    async def _renew(self) -> None:
        while self.claim is not None and not self._done.is_set():
            if self._keep_ms is not None and (time.monotonic() - self._started) * 1000 + self._lease_ms > self._keep_ms:
                # Kept long enough: the lease runs out, and another process takes the job over.
                return
            claim = self.claim
            moved = await self._writer.write(Reschedule(claim, self._lease_ms, polled=False))
            if moved is None:
                self._leases.let_go(claim)
            else:
                self._leases.hold(moved)
            self.claim = moved
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._renew_in_s()):
                    await self._done.wait()


class JobHandler:
    """One claimed job's state machine (shared by all of a poller's job tasks: it keeps no per-job state)."""

    def __init__(
        self,
        *,
        clients: Mapping[str, RunPodClient],
        status_clients: Mapping[str, RunPodClient],
        notifier: Notifier,
        http: aiohttp.ClientSession,
        fetch_policy: FetchPolicy,
        pace: Pace,
        settings: PollerSettings,
        catalog: ModelCatalog | None,
        stats: PollerStats,
        writer: Writer,
        leases: Leases,
        clock: ServerClock,
        metrics: Metrics | None = None,
    ) -> None:
        self.clients = clients
        self.status_clients = status_clients
        self.notifier = notifier
        self.http = http
        self.fetch_policy = fetch_policy
        self.pace = pace
        self.policy = pace.policy
        self.settings = settings
        self.catalog = catalog
        self.stats = stats
        self._writer = writer
        self._leases = leases
        self._clock = clock
        self.metrics = metrics
        # `/status` calls in flight: while any is, this cycle's writes wait for its outcome.
        self.statusing = 0

    def _kept(self, claim: Claimed, lease_ms: int, *, keep_ms: int | None = None) -> KeptLease:
        return KeptLease(claim, lease_ms, writer=self._writer, leases=self._leases, clock=self._clock, keep_ms=keep_ms)

    # --- entry points ---------------------------------------------------------------------------------------------

    async def handle(self, claim: Claimed) -> None:
        """Act on a job just claimed: report a lost submit, deliver a finished job again, or poll a live one."""
        job = claim.job
        if job.state is JobState.SUBMITTING:
            # The submitter's lease ran out before it stored RunPod's id: it crashed or hung mid-submit.
            log.warning("job %s: submit outcome unknown (no RunPod id after the submit lease)", job.jid)
            await self._finish(claim, JobResult(JobState.SUBMIT_UNKNOWN, reason=Reason.SUBMIT_UNKNOWN))
            return
        if job.state.is_outcome:
            await self._redeliver(claim)
            return
        await self._poll(claim)

    async def apply(self, claim: Claimed, status: Job) -> None:
        """Move the job as RunPod's job object says: finish it, or schedule its next poll."""
        job = claim.job
        outcome = FINISHED_STATES.get(status.status)
        if outcome is None:
            await self._progress(claim, status)
            return
        if job.cancel_requested_by is not None:
            # A result that arrives after a cancel request is not posted: the member asked to stop.
            outcome = JobState.CANCELLED
        # Fetching the images may outlast the claim lease.
        async with self._kept(claim, self.settings.claim_lease_ms) as kept:
            result = await self._result(job, status, outcome)
        if kept.claim is None:
            return
        await self._finish(kept.claim, result, status)

    # --- polling --------------------------------------------------------------------------------------------------

    async def _poll(self, claim: Claimed) -> None:
        job = claim.job
        client = self.status_clients.get(job.endpoint_id)
        if client is None or job.runpod_id is None:
            log.error("job %s: no client for endpoint %s; leaving it for another process", job.jid, job.endpoint_id)
            return
        if job.cancel_requested_by is not None and not await self._cancel_at_runpod(job):
            # No /cancel there (RunPod's local worker server), and a /status would run the job: stop tracking it.
            await self._finish(claim, JobResult(JobState.CANCELLED, reason=Reason.LOCAL_CANCEL))
            return
        # A job that runs only once asked about (RunPod's local worker server) is asked at once.
        deferred = None if client.runs_job_on_status else self.pace.first_poll_deferral_ms(job, self._clock.now_ms())
        if deferred is not None:
            self.stats.deferred_first_polls += 1
            self._leases.hold(await self._writer.write(Reschedule(claim, deferred, polled=False)))
            return
        extended = await self._hold_through_status(claim, client)
        if extended is None:
            return
        async with self._kept(extended, self.settings.claim_lease_ms) as kept:
            status = await self._status(client, job.runpod_id)
        if kept.claim is None:
            return
        claim = kept.claim
        if isinstance(status, NotFoundError):
            await self._finish(claim, JobResult(JobState.EXPIRED, reason=expired_reason(job, status)))
        elif isinstance(status, RunPodError):
            await self._retry_later(claim, status)
        else:
            self._count_poll(status)
            await self.apply(claim, status)

    async def _cancel_at_runpod(self, job: TrackedJob) -> bool:
        """Send the cancel a member asked for (again); False when the server has none (RunPod's local worker
        server)."""
        client = self.clients.get(job.endpoint_id)
        if job.runpod_id is None or client is None:
            return True
        report = await cancel_at_runpod(client, job)
        return report.outcome is not CancelOutcome.UNSUPPORTED

    async def _hold_through_status(self, claim: Claimed, client: RunPodClient) -> Claimed | None:
        """The claim, its lease first made as long as the `/status` call may last when that call runs the job
        (RunPod's local worker server: a second call would find nothing) and may outlast the claim lease. None when
        the job was taken meanwhile."""
        timeout_s = client.status_timeout_s
        if not client.runs_job_on_status or timeout_s is None or timeout_s * 1000 <= self.settings.claim_lease_ms:
            return claim
        moved = await self._writer.write(Reschedule(claim, math.ceil(timeout_s * 1000), polled=False))
        if moved is None:
            self._leases.let_go(claim)
            return None
        self._leases.hold(moved)
        return moved

    def _count_poll(self, status: Job) -> None:
        if status.is_finished:
            self.stats.final_polls += 1
        elif status.status is JobStatus.IN_QUEUE:
            self.stats.queued_polls += 1
        else:
            self.stats.running_polls += 1

    async def _status(self, client: RunPodClient, runpod_id: str) -> Job | RunPodError:
        """One `/status` call; while it is in flight, this cycle's writes wait for its outcome."""
        self.statusing += 1
        self.stats.status_calls += 1
        try:
            return await client.status(runpod_id)
        except RunPodError as exc:
            return exc
        finally:
            self.statusing -= 1
            self._writer.poke()

    async def _progress(self, claim: Claimed, status: Job) -> None:
        job = claim.job
        running = status.status is not JobStatus.IN_QUEUE
        now_ms = self._clock.now_ms()
        deadline_ms = self._deadline_ms(job)
        if deadline_ms is not None and now_ms >= deadline_ms:
            seen = "running" if running else "waiting for a worker"
            log.warning("job %s: still %s at RunPod past its time limit; giving up", job.jid, seen)
            await self._give_up(claim, deadline_reason(job, _late_ms(job, now_ms), still_reported_as(running)))
            return
        queue_deadline_ms = _queue_deadline_ms(job)
        if not running and queue_deadline_ms is not None:
            if now_ms >= queue_deadline_ms:
                log.warning("job %s: no worker started it within its queue wait limit; cancelling", job.jid)
                await self._give_up(claim, queue_wait_reason(job))
                return
            deadline_ms = queue_deadline_ms if deadline_ms is None else min(deadline_ms, queue_deadline_ms)
        state = JobState.RUNNING if running else JobState.QUEUED
        progress = parse_progress(status.output) if running else None
        progress_text = f"{progress.done:g}/{progress.total:g}" if progress is not None else None
        delay = self.pace.next_poll_ms(
            job,
            running=running,
            elapsed_ms=self._elapsed_running_ms(job, status) if running else 0.0,
            progress=progress,
            queue_rank=claim.queue_rank,
        )
        if deadline_ms is not None:
            # The check that ends an over-long wait or life comes on time, not a backed-off interval later.
            delay = min(delay, max(0, math.ceil(deadline_ms - now_ms)))
        fields: dict[str, Any] = {"runpod_status": status.status.value, "progress": progress_text, "error": None}
        if status.delay_time_ms is not None:
            fields["delay_time_ms"] = status.delay_time_ms
        if status.worker_id:
            fields["worker_id"] = status.worker_id
        if job.status_errors:
            # A good answer ends a run of failed checks.
            fields.update(status_errors=0, status_error_since=None)
        moved = await self._writer.write(Reschedule(claim, delay, state=state, fields=fields))
        if moved is None:
            self._leases.let_go(claim)
            return
        self._leases.hold(moved)
        if state is not job.state or progress_text != job.progress:
            updated = job.model_copy(update={"state": state, "progress": progress_text, **_typed(fields)})
            await self._tell_updated(updated)

    def _elapsed_running_ms(self, job: TrackedJob, status: Job) -> float:
        if status.execution_time_ms:
            return float(status.execution_time_ms)
        if job.submitted_at is None:
            return 0.0
        started = to_ms(job.submitted_at) + (status.delay_time_ms or 0)
        return max(0.0, self._clock.now_ms() - started)

    async def _tell_updated(self, job: TrackedJob) -> None:
        try:
            await self.notifier.job_updated(job)
        except Exception:
            log.exception("job %s: progress notification failed", job.jid)

    # --- failed checks and deadlines ------------------------------------------------------------------------------

    async def _retry_later(self, claim: Claimed, exc: RunPodError) -> None:
        """Check again later after a failed `/status`, unless the run of failures or the job's time is up."""
        job = claim.job
        kind = classify_status_error(exc)
        now_ms = self._clock.now_ms()
        errors = job.status_errors + 1
        since_ms = to_ms(job.status_error_since) if job.status_error_since is not None else round(now_ms)
        deadline_ms = self._deadline_ms(job) if job.state.is_live else None
        if deadline_ms is not None and now_ms >= deadline_ms:
            log.warning("job %s: status checks still failing past its time limit; giving up: %s", job.jid, exc)
            await self._give_up(claim, deadline_reason(job, _late_ms(job, now_ms), Reason.STATUS_STILL_FAILING))
            return
        if errors >= self.settings.min_errors_to_give_up and now_ms - since_ms >= self._error_life_ms(kind):
            reason = status_error_reason(kind, exc, now_ms - since_ms)
            note = Reason.FIX_THE_KEY if kind is StatusErrorKind.AUTH else ""
            log.warning("job %s: %s status checks failed in a row; giving up: %s", job.jid, errors, exc)
            if job.state.is_live:
                await self._give_up(claim, reason + Reason.GAVE_UP + note)
            else:
                # A finished job whose images must be fetched again: nothing runs at RunPod any more.
                lost = reason + Reason.IMAGES_LOST + note
                await self._deliver(claim, JobResult(JobState.FAILED, reason=lost))
            return
        if kind is StatusErrorKind.AUTH:
            log.error(
                "job %s: RunPod rejected the API key; retrying in %s s",
                job.jid,
                self.settings.auth_error_retry_ms // 1000,
            )
            delay = self.settings.auth_error_retry_ms
        elif isinstance(exc, RateLimitedError) and exc.retry_after:
            delay = int(exc.retry_after * 1000)
        else:
            log.warning("job %s: status check failed: %s", job.jid, exc)
            delay = self.settings.error_retry_ms
        if deadline_ms is not None:
            delay = min(delay, max(0, math.ceil(deadline_ms - now_ms)))
        fields = {"status_errors": errors, "status_error_since": datetime.fromtimestamp(since_ms / 1000, tz=UTC)}
        _noted, moved = await asyncio.gather(
            self._writer.write(RecordError(job.endpoint_id, str(exc))),
            self._writer.write(Reschedule(claim, delay, polled=False, fields=fields)),
        )
        self._leases.hold(moved)

    def _error_life_ms(self, kind: StatusErrorKind) -> int:
        if kind in (StatusErrorKind.REFUSED, StatusErrorKind.UNREADABLE):
            return self.settings.refused_error_life_ms
        if kind is StatusErrorKind.AUTH:
            return self.settings.auth_error_life_ms
        return self.settings.outage_error_life_ms

    def _deadline_ms(self, job: TrackedJob) -> float | None:
        """When a live job is given up whatever RunPod says: its policy.ttl after its submit, plus a margin."""
        ttl_end_ms = _ttl_end_ms(job)
        return None if ttl_end_ms is None else ttl_end_ms + self.settings.deadline_margin_ms

    async def _give_up(self, claim: Claimed, reason: str) -> None:
        """End a live job FAILED with `reason` (its member's quota slot is freed), after one /cancel at RunPod."""
        job = claim.job
        client = self.status_clients.get(job.endpoint_id)
        if client is not None and job.runpod_id is not None:
            # One attempt (the status clients do not retry), cut short: the job ends whatever RunPod answers.
            await cancel_at_runpod(client, job, timeout_s=GIVE_UP_CANCEL_TIMEOUT_S)
        await self._finish(claim, JobResult(JobState.FAILED, reason=reason))

    # --- finishing and delivery -----------------------------------------------------------------------------------

    async def _result(self, job: TrackedJob, status: Job, outcome: JobState) -> JobResult:
        if outcome is not JobState.COMPLETED:
            return JobResult(outcome, reason=worker_failure_reason(status.error_message, outcome))
        self.pace.finished(job.endpoint_id, status.execution_time_ms)
        allowed = self._image_cap(job)
        try:
            # Images beyond the cap are never downloaded or decoded: memory stays bounded by the cap.
            extraction = await extract_output(
                status.output, session=self.http, policy=self.fetch_policy, max_images=allowed
            )
        except OutputError as exc:
            log.warning("job %s: output unusable: %s", job.jid, exc)
            return JobResult(JobState.FAILED, reason=str(exc) or Reason.NO_IMAGE)
        capped = None
        if extraction.dropped:
            log.warning("job %s: the worker returned %s images; delivering %s", job.jid, extraction.found, allowed)
            capped = ImageCap(returned=extraction.found, allowed=allowed)
        return JobResult(JobState.COMPLETED, images=extraction.images, capped=capped)

    def _image_cap(self, job: TrackedJob) -> int:
        """How many images the job may deliver: its model's `max_count` (a model removed since: the maximum)."""
        if self.catalog is None:
            return MAX_IMAGES_PER_JOB
        try:
            return min(self.catalog.get(job.model).limits.max_count, MAX_IMAGES_PER_JOB)
        except InvalidRequestError:
            return MAX_IMAGES_PER_JOB

    async def _finish(self, claim: Claimed, result: JobResult, status: Job | None = None) -> None:
        fields: dict[str, Any] = {"error": result.reason}
        execution_ms: int | None = None
        if status is not None:
            fields["runpod_status"] = status.status.value
            if status.delay_time_ms is not None:
                fields["delay_time_ms"] = status.delay_time_ms
            if status.execution_time_ms is not None:
                execution_ms = status.execution_time_ms
                fields["execution_time_ms"] = execution_ms
            if status.worker_id:
                fields["worker_id"] = status.worker_id
        if result.capped is not None:
            # Recorded with the outcome, so every later view of the job (the card, /jobs) can say what was left out.
            fields["extra"] = {
                **claim.job.extra,
                "images_returned": result.capped.returned,
                "images_allowed": result.capped.allowed,
            }
        # RunPod's report of the end says what GPU time the job used: added to the usage sums in the same step that
        # records the outcome, once per job. Without a report (expired, outcome unknown, given up) nothing is known.
        usage = None
        if status is not None:
            finished_at = datetime.fromtimestamp(self._clock.now_ms() / 1000, tz=UTC)
            usage = charge_of(claim.job, status.execution_time_ms, status.delay_time_ms, self.catalog, finished_at)
        delivering = await self._writer.write(
            FinalizeBegin(
                claim,
                result.outcome,
                lease_ms=self.policy.delivery_lease_ms,
                fields=fields,
                execution_ms=execution_ms,
                usage=usage,
                # RunPod's report settles the budget reservation to its figure (none: given back). Without a report
                # the job may have run and been billed unseen, so its estimate stays charged; a local worker's job
                # cancelled before its one /status never ran.
                keep_reservation=status is None and result.outcome is not JobState.CANCELLED,
            )
        )
        if delivering is None:
            self._leases.let_go(claim)
            return
        self._leases.hold(delivering)
        if delivering.counted and usage is not None and self.metrics is not None:
            model = metric_model(usage.model, self.catalog)
            self.metrics.gpu_seconds.labels(model=model).inc(usage.gpu_ms / 1000)
            self.metrics.queue_seconds.labels(model=model).inc(usage.queue_ms / 1000)
        await self._deliver(delivering, result)

    async def _deliver(self, claim: Claimed, result: JobResult) -> None:
        job = claim.job
        lease_ms = self.policy.delivery_lease_ms
        kept = self._kept(claim, lease_ms, keep_ms=MAX_DELIVERY_LEASES * lease_ms)
        try:
            async with kept:
                delivery = await self.notifier.job_finished(job, result)
        except Exception as exc:
            # A lost lease (None) fences the writes below out, as the stale one would.
            claim = kept.claim or claim
            attempts = int(job.extra.get("delivery_attempts", 0)) + 1
            if isinstance(exc, DeliveryFailed) and exc.final:
                log.warning("job %s: delivery refused for good: %s", job.jid, exc.reason)
                await self._give_up_delivery(claim, result, exc.reason)
                return
            if attempts >= self.settings.max_delivery_attempts:
                log.exception("job %s: delivery failed %s times; giving up", job.jid, attempts)
                cause = exc.reason if isinstance(exc, DeliveryFailed) else Reason.UNDELIVERED
                await self._give_up_delivery(claim, result, delivery_gave_up(cause, attempts))
                return
            log.exception("job %s: delivery failed (attempt %s); will retry", job.jid, attempts)
            delay = self.settings.delivery_retry_base_ms * 2 ** (attempts - 1)
            moved = await self._writer.write(
                Reschedule(claim, delay, polled=False, fields={"extra": {**job.extra, "delivery_attempts": attempts}})
            )
            self._leases.hold(moved)
            return
        claim = kept.claim or claim
        fields: dict[str, Any] = {}
        if delivery.message_ids:
            fields["result_message_ids"] = delivery.message_ids
        if not await self._writer.write(FinalizeCommit(claim, fields=fields)):
            log.warning("job %s: delivered, but another process took the job meanwhile", job.jid)
        self._leases.let_go(claim)

    async def _give_up_delivery(self, claim: Claimed, result: JobResult, reason: str) -> None:
        """End a job whose result cannot be delivered: show that (best effort), and record it with the job."""
        job = claim.job
        extra = {**job.extra, DELIVERY_FAILED_FIELD: reason}
        undelivered = JobResult(result.outcome, reason=result.reason, capped=result.capped, undelivered=reason)
        try:
            await self.notifier.job_finished(job.model_copy(update={"extra": extra}), undelivered)
        except Exception:
            log.exception("job %s: could not show that its result was not delivered", job.jid)
        await self._writer.write(FinalizeCommit(claim, fields={"extra": extra}))
        self._leases.let_go(claim)

    async def _redeliver(self, claim: Claimed) -> None:
        """A job whose delivery did not commit (a crash or a failed attempt): deliver it again."""
        job = claim.job
        if job.state is not JobState.COMPLETED:
            await self._deliver(claim, JobResult(job.state, reason=job.error or default_reason(job.state)))
            return
        client = self.status_clients.get(job.endpoint_id)
        if client is None or job.runpod_id is None:
            return
        # The /status call and fetching the images again may outlast the claim lease.
        async with self._kept(claim, self.settings.claim_lease_ms) as kept:
            status = await self._status(client, job.runpod_id)
            result = None if isinstance(status, RunPodError) else await self._result(job, status, JobState.COMPLETED)
        if kept.claim is None:
            return
        claim = kept.claim
        if isinstance(status, NotFoundError):
            await self._deliver(claim, JobResult(JobState.EXPIRED, reason=expired_reason(job, status)))
        elif isinstance(status, RunPodError):
            await self._retry_later(claim, status)
        elif result is not None:
            await self._deliver(claim, result)


def _ttl_end_ms(job: TrackedJob) -> float | None:
    """When RunPod deletes the job: its policy.ttl after the submit (RunPod's longest ttl for older records)."""
    if job.submitted_at is None:
        return None
    return to_ms(job.submitted_at) + (job.ttl_ms if job.ttl_ms is not None else MAX_POLICY_TTL_MS)


def _late_ms(job: TrackedJob, now_ms: float) -> float:
    """How long past its time limit (when RunPod deletes it) a job is now."""
    return now_ms - (_ttl_end_ms(job) or now_ms)


def _queue_deadline_ms(job: TrackedJob) -> float | None:
    if job.submitted_at is None or job.max_queue_wait_ms is None:
        return None
    return to_ms(job.submitted_at) + job.max_queue_wait_ms


def _typed(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key in TrackedJob.model_fields}
