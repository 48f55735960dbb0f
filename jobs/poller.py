"""`Poller`: claims due jobs, polls RunPod, moves their state, and hands finished jobs to the notifier.

Guarantees (with the store's): a job is handled by one process at a time, or, when a webhook takes it over, only
the newest holder can commit; a finished job's `job_finished` runs until one call returns, possibly more than once if
a process dies mid-delivery (see `Notifier`), or until delivery is given up (a final refusal, or too many failures),
when it is called once more to show that and the job ends; one failing job never stops the loop; `stop()` gives back
every lease it holds so another process takes over at once. Every job ends: an unbroken run of failed `/status`
checks has a bounded life (by kind of error), a job no worker starts within its queue wait limit is cancelled, and
no job stays live past its policy.ttl plus `deadline_margin_ms`, whatever RunPod answers; each ends FAILED with its
reason, after one `/cancel` at RunPod.

Cost: every process respects the endpoint's shared `/status` budget (a token bucket in Redis), and the writes that
follow a cycle's polls (reschedules, finalize begins and commits) are coalesced into one `JobStore.apply` round trip:
a write waits until no `/status` call of this poller is in flight, or at most `write_window_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from typing import Any

import aiohttp

from jobs.labels import DELIVERY_FAILED_FIELD
from jobs.logcontext import current_job
from jobs.metrics import Metrics
from jobs.notifier import DeliveryFailed, ImageCap, JobResult, Notifier
from jobs.policy import ExecutionTimes, PollPolicy, is_sync_id
from jobs.presets import MAX_IMAGES_PER_JOB, InvalidRequestError, ModelCatalog
from jobs.service import LOCAL_CANCEL_NOTE, MAX_POLICY_TTL_MS, SUBMIT_UNKNOWN_REASON
from jobs.tasks import BackgroundTasks
from runpod_client import (
    AuthenticationError,
    InvalidResponseError,
    Job,
    JobStatus,
    NotFoundError,
    NotSupportedError,
    RateLimitedError,
    ResultLostError,
    RunPodAPIError,
    RunPodClient,
    RunPodError,
    ServerError,
)
from runpod_client.outputs import FetchPolicy, OutputError, extract_output, parse_progress
from storage.models import JobState, TrackedJob, to_ms
from storage.store import (
    DEFAULT_BURST_MS,
    Claimed,
    FinalizeBegin,
    FinalizeCommit,
    JobStore,
    OpResult,
    RecordError,
    Reschedule,
    StoreOp,
)

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
DEFAULT_BATCH = 100
DEFAULT_CLAIM_LEASE_MS = 30_000
# 80% of RunPod's 2000 /status per 10 s, shared by every process through Redis.
DEFAULT_STATUS_BUDGET_PER_S = 160
# The budget bucket holds a quarter second of budget: at most 1.25 x the budget in any sliding second, and at most
# 10.25 x in any 10 s (1640 of RunPod's 2000 with the default budget).
DEFAULT_STATUS_BURST_MS = DEFAULT_BURST_MS
DEFAULT_IDLE_SLEEP_S = 0.25
MIN_PAUSE_S = 0.005
# Jobs that come due within this long of each other are claimed together: fewer, fuller cycles.
DEFAULT_CLAIM_COALESCE_MS = 25
# A first poll that would be put off by less than this is not worth a write.
MIN_DEFER_MS = 100
DEFAULT_MAX_DELIVERY_ATTEMPTS = 8
DELIVERY_RETRY_BASE_MS = 5_000
ERROR_RETRY_MS = 5_000
AUTH_ERROR_RETRY_MS = 60_000
# How long an unbroken run of failed /status checks of a job may last before the job is given up (FAILED, cancelled
# at RunPod): refusals (400 and the other 4xx but 401/403/404/429) and unreadable replies will not go away by
# themselves; a bad key needs an operator, and an outage (429, 5xx, no connection) may end, so those get longer.
REFUSED_ERROR_LIFE_MS = 10 * 60_000
AUTH_ERROR_LIFE_MS = 30 * 60_000
OUTAGE_ERROR_LIFE_MS = 30 * 60_000
# A job is never given up on fewer failed checks in a row than this: one late retry after a pause is no pattern.
MIN_ERRORS_TO_GIVE_UP = 3
# A job still live this long after its policy.ttl (when RunPod should answer 404) is given up, whatever RunPod says.
DEADLINE_MARGIN_MS = 5 * 60_000
# The /cancel sent when a job is given up is one attempt, cut short well within the claim lease.
GIVE_UP_CANCEL_TIMEOUT_S = 10.0
# The longest a write waits for the other writes of its cycle (what batching may add to a result's lag).
DEFAULT_WRITE_WINDOW_MS = 50
# On stop, background work other than job handlers (lease hand-backs) gets this long before it is cancelled.
STOP_GRACE_S = 2.0
# How often the execution times every process recorded are read again.
DEFAULT_SAMPLES_REFRESH_S = 30.0
# The finish rate of an endpoint (how fast its queue moves) is measured over this window.
FINISH_RATE_WINDOW_S = 30.0
MIN_FINISHES_FOR_RATE = 5

EXPIRED_REASON = (
    "RunPod no longer has this job, so its images are lost: RunPod deletes a job's result 30 minutes after it "
    "finishes, and deletes every job, finished or not, at its time limit."
)
RESULT_LOST_REASON = (
    "RunPod's local worker server no longer has this job, so its images are lost: that server runs a job when the "
    "bot first asks for its status and gives the result only in that one reply, which did not reach the bot (or the "
    "server was restarted)."
)
SYNC_EXPIRED_REASON = (
    "RunPod no longer has this job, so its images are lost: it was sent with /runsync (a fast model), whose result "
    "RunPod keeps only 1 minute after it finishes, and the bot could not fetch it in that time (it was restarted or "
    "stalled)."
)
GAVE_UP = ", so the bot stopped waiting for it and asked RunPod to cancel it."
NO_IMAGE_REASON = "The worker finished without returning any image."
UNDELIVERED_REASON = "The result could not be delivered because of an unexpected error, logged by the bot"

TERMINAL_STATES: Mapping[JobStatus, JobState] = {
    JobStatus.COMPLETED: JobState.COMPLETED,
    JobStatus.FAILED: JobState.FAILED,
    JobStatus.CANCELLED: JobState.CANCELLED,
    JobStatus.TIMED_OUT: JobState.TIMED_OUT,
}


@dataclass(frozen=True)
class PollerSettings:
    concurrency: int = DEFAULT_CONCURRENCY
    batch: int = DEFAULT_BATCH
    claim_lease_ms: int = DEFAULT_CLAIM_LEASE_MS
    status_budget_per_s: int = DEFAULT_STATUS_BUDGET_PER_S
    status_burst_ms: int = DEFAULT_STATUS_BURST_MS
    idle_sleep_s: float = DEFAULT_IDLE_SLEEP_S
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS
    delivery_retry_base_ms: int = DELIVERY_RETRY_BASE_MS
    error_retry_ms: int = ERROR_RETRY_MS
    auth_error_retry_ms: int = AUTH_ERROR_RETRY_MS
    refused_error_life_ms: int = REFUSED_ERROR_LIFE_MS
    auth_error_life_ms: int = AUTH_ERROR_LIFE_MS
    outage_error_life_ms: int = OUTAGE_ERROR_LIFE_MS
    min_errors_to_give_up: int = MIN_ERRORS_TO_GIVE_UP
    deadline_margin_ms: int = DEADLINE_MARGIN_MS
    write_window_ms: int = DEFAULT_WRITE_WINDOW_MS
    samples_refresh_s: float = DEFAULT_SAMPLES_REFRESH_S
    claim_coalesce_ms: int = DEFAULT_CLAIM_COALESCE_MS


class StatusErrorKind(StrEnum):
    """What a failed `/status` check means, which decides how long such failures may go on (a 404 is EXPIRED)."""

    REFUSED = "refused"  # 400 and every other 4xx but 401, 403, 404 and 429
    UNREADABLE = "unreadable"  # a success status with a body that is no job object (a proxy's page)
    AUTH = "auth"  # 401, 403: the key is wrong or has no access to the endpoint
    RATE_LIMITED = "rate_limited"  # 429
    SERVER = "server"  # 5xx
    UNREACHABLE = "unreachable"  # no connection, a reset, a timeout


def classify_status_error(exc: RunPodError) -> StatusErrorKind:
    if isinstance(exc, AuthenticationError):
        return StatusErrorKind.AUTH
    if isinstance(exc, RateLimitedError):
        return StatusErrorKind.RATE_LIMITED
    if isinstance(exc, InvalidResponseError):
        return StatusErrorKind.UNREADABLE
    if isinstance(exc, ServerError):
        return StatusErrorKind.SERVER
    if isinstance(exc, RunPodAPIError):
        return StatusErrorKind.REFUSED
    return StatusErrorKind.UNREACHABLE


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


class Poller:
    """One process's share of the tracking work. Several pollers on one Redis split the jobs between them.

    `status_clients` (default: `clients`) make the `/status` calls; give them `retry=NO_RETRY` so that every
    attempt passes through the shared budget (the poller retries by rescheduling, which claims again). With `only`,
    the poller claims just those jobs (a terminal waiting for its own job), never another process's.
    """

    def __init__(
        self,
        store: JobStore,
        clients: Mapping[str, RunPodClient],
        notifier: Notifier,
        *,
        http: aiohttp.ClientSession,
        fetch_policy: FetchPolicy | None = None,
        policy: PollPolicy | None = None,
        settings: PollerSettings | None = None,
        executions: ExecutionTimes | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        status_clients: Mapping[str, RunPodClient] | None = None,
        catalog: ModelCatalog | None = None,
        only: Collection[str] | None = None,
    ) -> None:
        self.store = store
        # Each model's `max_count` caps the images a job delivers; without a catalog, only the per-job maximum does.
        self.catalog = catalog
        self.only = only
        self.clients = clients
        self.status_clients = status_clients if status_clients is not None else clients
        self.notifier = notifier
        self.http = http
        self.fetch_policy = fetch_policy or FetchPolicy()
        self.policy = policy or PollPolicy()
        self.settings = settings or PollerSettings()
        self.executions = executions or ExecutionTimes()
        self.rng = rng or random.Random()
        self.metrics = metrics
        self.stats = PollerStats()
        self._held: dict[str, Claimed] = {}
        self._semaphore = asyncio.Semaphore(self.settings.concurrency)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._statusing = 0
        # Job handlers, lease hand-backs and the write flusher: all this poller's, all ended by `stop()`.
        self._tasks = BackgroundTasks("poller")
        self._writer = _Writer(
            store,
            window_s=self.settings.write_window_ms / 1000,
            busy=lambda: self._statusing > 0,
            stats=self.stats,
            tasks=self._tasks,
        )
        self._clock_offset_ms = 0.0
        self._sleep_s = self.settings.idle_sleep_s
        self._full = False
        self._finishes: dict[str, deque[float]] = {}
        self._samples_loaded_at: float | None = None

    @property
    def endpoint_ids(self) -> list[str]:
        return sorted(self.clients)

    async def run(self) -> None:
        """Poll until `stop()`; a failing cycle is logged and the loop goes on."""
        while not self._stopping.is_set():
            await self._refresh_samples()
            started = time.monotonic()
            try:
                handled = await self.run_once()
                if self.metrics is not None:
                    self.metrics.poll_cycle.observe(time.monotonic() - started)
            except Exception:
                log.exception("poll cycle failed; retrying")
                handled, self._sleep_s = 0, self.settings.idle_sleep_s
            # A cycle that found nothing never spins: it pauses at least a little.
            await self._pause(self._sleep_s if handled else max(self._sleep_s, MIN_PAUSE_S))

    async def run_once(self) -> int:
        """Claim what is due on every endpoint, start handling it, and return how many jobs were claimed."""
        claimed = 0
        sleep_s = self.settings.idle_sleep_s
        for endpoint_id in self.endpoint_ids:
            free = self.settings.concurrency - len(self._in_flight)
            if free <= 0 or self._stopping.is_set():
                break
            limit = min(self.settings.batch, free)
            batch = await self.store.claim_due(
                endpoint_id,
                limit=limit,
                lease_ms=self.settings.claim_lease_ms,
                budget_per_second=self.settings.status_budget_per_s,
                burst_ms=self.settings.status_burst_ms,
                only=self.only,
            )
            self._clock_offset_ms = batch.now_ms - time.time() * 1000
            self.stats.cycles += 1
            if batch.jobs:
                self.stats.busy_cycles += 1
                self.stats.claimed += len(batch.jobs)
            for claim in batch.jobs:
                self._start(claim, self._handle(claim))
            claimed += len(batch.jobs)
            sleep_s = min(sleep_s, self._ready_in_s(len(batch.jobs), limit, batch.budget_wait_ms, batch.next_due_ms))
        self._full = self.settings.concurrency - len(self._in_flight) <= 0
        if self._full:
            # Every slot is taken: the first job to finish wakes the loop.
            sleep_s = self.settings.idle_sleep_s
        self._sleep_s = max(0.0, sleep_s)
        return claimed

    def _ready_in_s(self, claimed: int, limit: int, budget_wait_ms: int, next_due_ms: int | None) -> float:
        """How soon this endpoint may have work again, from what its claim said."""
        if budget_wait_ms > 0 and (next_due_ms == 0 or claimed > 0):
            # Due jobs are waiting for the budget: come back when a worthwhile batch of it has refilled.
            return max(budget_wait_ms, next_due_ms or 0) / 1000
        if claimed >= limit:
            return 0.0
        if next_due_ms is None:
            return self.settings.idle_sleep_s
        return max(next_due_ms, self.settings.claim_coalesce_ms) / 1000

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            # Let the tasks just started run before claiming again.
            await asyncio.sleep(0)
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def wake(self) -> None:
        """Claim again now (a job was made due, or a slot freed up)."""
        self._wake.set()

    def adopt(self, claim: Claimed, status: Job) -> None:
        """Finish (or update) a job whose lease this process just took, from RunPod's job object (a webhook).

        A stopping poller hands the job straight back (due at once) for another process.
        """
        if self._stopping.is_set():
            self._tasks.spawn(self.store.release([claim]), name=f"release-{claim.job.jid}")
            return
        self.stats.webhook_jobs += 1
        self._start(claim, self._apply(claim, status))

    async def drain(self) -> None:
        """Wait for every job being handled to finish (tests and graceful shutdown)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming, let in-flight work finish for up to `timeout_s`, then release every lease still held."""
        self._stopping.set()
        self._wake.set()
        if self._in_flight:
            _done, pending = await asyncio.wait(list(self._in_flight), timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        released = await self.store.release(list(self._held.values()))
        if released:
            log.info("released %s job leases for other processes", released)
        self._held.clear()
        # Lease hand-backs still on their way get a moment to land; nothing this poller started outlives it.
        await self._tasks.close(timeout_s=STOP_GRACE_S)

    # --- one job -------------------------------------------------------------------------------------------------

    def _start(self, claim: Claimed, work: Coroutine[Any, Any, None]) -> None:
        self._held[claim.job.jid] = claim
        task = self._tasks.spawn(self._guarded(claim, work), name=f"job-{claim.job.jid}")
        self._in_flight.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._full:
            self._full = False
            self._wake.set()

    async def _guarded(self, claim: Claimed, work: Coroutine[Any, Any, None]) -> None:
        # The task's own context: every record it logs names the job.
        current_job.set(claim.job.jid)
        async with self._semaphore:
            try:
                await work
            except asyncio.CancelledError:
                # Cut off by `stop()`: the lease stays listed so that `stop()` gives it back at once.
                raise
            except Exception:
                # One failing job never stops the others; its lease runs out and it is tried again.
                log.exception("job %s: handling failed", claim.job.jid)
            # Finished (or failed): whatever this task held is done with. Not in a `finally`, so a cancelled
            # task's lease is still released by `stop()` instead of waiting out its lease.
            held = self._held.get(claim.job.jid)
            if held is not None and held.token <= claim.token:
                self._held.pop(claim.job.jid, None)

    def _hold(self, claim: Claimed | None) -> None:
        if claim is not None:
            self._held[claim.job.jid] = claim

    def _let_go(self, claim: Claimed) -> None:
        held = self._held.get(claim.job.jid)
        if held is not None and held.token <= claim.token:
            self._held.pop(claim.job.jid, None)

    async def _write(self, op: StoreOp) -> OpResult:
        return await self._writer.write(op)

    async def _handle(self, claim: Claimed) -> None:
        job = claim.job
        if job.state is JobState.SUBMITTING:
            # The submitter's lease ran out before it stored RunPod's id: it crashed or hung mid-submit.
            log.warning("job %s: submit outcome unknown (no RunPod id after the submit lease)", job.jid)
            await self._finish(claim, JobResult(JobState.SUBMIT_UNKNOWN, reason=SUBMIT_UNKNOWN_REASON))
            return
        if job.state.is_outcome:
            await self._redeliver(claim)
            return
        await self._poll(claim)

    async def _poll(self, claim: Claimed) -> None:
        job = claim.job
        client = self.status_clients.get(job.endpoint_id)
        if client is None or job.runpod_id is None:
            log.error("job %s: no client for endpoint %s; leaving it for another process", job.jid, job.endpoint_id)
            return
        if job.cancel_requested_by is not None and not await self._cancel_at_runpod(job):
            # No /cancel there (RunPod's local worker server), and a /status would run the job: stop tracking it.
            await self._finish(claim, JobResult(JobState.CANCELLED, reason=LOCAL_CANCEL_NOTE))
            return
        # A job that runs only once asked about (RunPod's local worker server) is asked at once.
        deferred = None if client.runs_job_on_status else self._first_poll_deferral_ms(job)
        if deferred is not None:
            self.stats.deferred_first_polls += 1
            moved = await self._write(Reschedule(claim, deferred, polled=False))
            self._hold(moved if isinstance(moved, Claimed) else None)
            return
        extended = await self._hold_through_status(claim, client)
        if extended is None:
            return
        claim = extended
        status = await self._status(client, job.runpod_id)
        if isinstance(status, NotFoundError):
            await self._finish(claim, JobResult(JobState.EXPIRED, reason=expired_reason(job, status)))
        elif isinstance(status, RunPodError):
            await self._retry_later(claim, status)
        else:
            self._count_poll(status)
            await self._apply(claim, status)

    async def _hold_through_status(self, claim: Claimed, client: RunPodClient) -> Claimed | None:
        """The claim, its lease first made as long as the `/status` call may last when that call runs the job
        (RunPod's local worker server: a second call would find nothing) and may outlast the claim lease. None when
        the job was taken meanwhile."""
        timeout_s = client.status_timeout_s
        if not client.runs_job_on_status or timeout_s is None or timeout_s * 1000 <= self.settings.claim_lease_ms:
            return claim
        moved = await self._write(Reschedule(claim, math.ceil(timeout_s * 1000), polled=False))
        if not isinstance(moved, Claimed):
            self._let_go(claim)
            return None
        self._hold(moved)
        return moved

    def _count_poll(self, status: Job) -> None:
        if status.is_terminal:
            self.stats.final_polls += 1
        elif status.status is JobStatus.IN_QUEUE:
            self.stats.queued_polls += 1
        else:
            self.stats.running_polls += 1

    async def _status(self, client: RunPodClient, runpod_id: str) -> Job | RunPodError:
        """One `/status` call; while it is in flight, this cycle's writes wait for its outcome."""
        self._statusing += 1
        self.stats.status_calls += 1
        try:
            return await client.status(runpod_id)
        except RunPodError as exc:
            return exc
        finally:
            self._statusing -= 1
            self._writer.poke()

    async def _apply(self, claim: Claimed, status: Job) -> None:
        """Move the job as RunPod's job object says: finish it, or schedule its next poll."""
        job = claim.job
        outcome = TERMINAL_STATES.get(status.status)
        if outcome is None:
            await self._progress(claim, status)
            return
        if job.cancel_requested_by is not None:
            # A result that arrives after a cancel request is not posted: the member asked to stop.
            outcome = JobState.CANCELLED
        await self._finish(claim, await self._result(job, status, outcome), status)

    async def _progress(self, claim: Claimed, status: Job) -> None:
        job = claim.job
        running = status.status is not JobStatus.IN_QUEUE
        now_ms = self._redis_now_ms()
        deadline_ms = self._deadline_ms(job)
        if deadline_ms is not None and now_ms >= deadline_ms:
            seen = "running" if running else "waiting for a worker"
            log.warning("job %s: still %s at RunPod past its time limit; giving up", job.jid, seen)
            await self._give_up(claim, self._deadline_reason(job, now_ms, f"RunPod still reported this job as {seen}"))
            return
        queue_deadline_ms = self._queue_deadline_ms(job)
        if not running and queue_deadline_ms is not None:
            if now_ms >= queue_deadline_ms:
                log.warning("job %s: no worker started it within its queue wait limit; cancelling", job.jid)
                await self._give_up(claim, _queue_wait_reason(job))
                return
            deadline_ms = queue_deadline_ms if deadline_ms is None else min(deadline_ms, queue_deadline_ms)
        state = JobState.RUNNING if running else JobState.QUEUED
        progress = parse_progress(status.output) if running else None
        progress_text = f"{progress.done:g}/{progress.total:g}" if progress is not None else None
        endpoint_id = job.endpoint_id
        if self.policy.webhooks and not is_sync_id(job.runpod_id):
            delay = self.policy.safety_net(self.rng)
        elif running:
            delay = self.policy.running(
                elapsed_ms=self._elapsed_running_ms(job, status),
                progress=progress,
                typical_ms=self.executions.typical(endpoint_id),
                earliest_ms=self.executions.earliest(endpoint_id),
                rng=self.rng,
            )
        else:
            delay = self.policy.queued(
                job.poll_count,
                next_in_line=self._next_in_line(claim),
                earliest_finish_ms=self.executions.earliest(endpoint_id),
                expected_wait_ms=self._expected_wait_ms(claim),
                rng=self.rng,
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
        moved = await self._write(Reschedule(claim, delay, state=state, fields=fields))
        if not isinstance(moved, Claimed):
            self._let_go(claim)
            return
        self._hold(moved)
        if state is not job.state or progress_text != job.progress:
            updated = job.model_copy(update={"state": state, "progress": progress_text, **_typed(fields)})
            await self._tell_updated(updated)

    def _first_poll_deferral_ms(self, job: TrackedJob) -> int | None:
        """How much later to poll a job never polled yet: it cannot be done before the endpoint's shortest usual run
        has passed since its submit, so its first poll comes `overdue_ms` after that (as for a running job), at most
        `running_max_ms` after the submit. None: poll now."""
        webhooked = self.policy.webhooks and not is_sync_id(job.runpod_id)
        if webhooked or job.poll_count > 0 or job.cancel_requested_by is not None:
            return None
        earliest = self.executions.earliest(job.endpoint_id)
        if earliest is None or job.submitted_at is None:
            return None
        due = to_ms(job.submitted_at) + min(earliest + self.policy.overdue_ms, self.policy.running_max_ms)
        wait = round(due - self._redis_now_ms())
        return wait if wait >= MIN_DEFER_MS else None

    def _next_in_line(self, claim: Claimed) -> bool:
        """Whether the job is among those expected to start before the next short poll."""
        if claim.queue_rank is None:
            return False
        rate = self._finish_rate(claim.job.endpoint_id)
        in_line = max(1.0, (rate or 0.0) * self.policy.next_in_line_ms / 1000)
        return claim.queue_rank < in_line

    def _expected_wait_ms(self, claim: Claimed) -> float | None:
        """How long until the queued job probably starts: the jobs ahead of it, at the rate jobs finish."""
        rate = self._finish_rate(claim.job.endpoint_id)
        if claim.queue_rank is None or not rate:
            return None
        return claim.queue_rank / rate * 1000

    def _finish_rate(self, endpoint_id: str) -> float | None:
        """Jobs of the endpoint this process saw finish per second lately (with a queue, how fast it moves)."""
        finishes = self._finishes.get(endpoint_id)
        if not finishes:
            return None
        now = time.monotonic()
        while finishes and finishes[0] < now - FINISH_RATE_WINDOW_S:
            finishes.popleft()
        if len(finishes) < MIN_FINISHES_FOR_RATE:
            return None
        return len(finishes) / max(now - finishes[0], 1.0)

    def _redis_now_ms(self) -> float:
        """The Redis server's clock (every stored time is on it), from the offset seen at the last claim."""
        return time.time() * 1000 + self._clock_offset_ms

    def _elapsed_running_ms(self, job: TrackedJob, status: Job) -> float:
        if status.execution_time_ms:
            return float(status.execution_time_ms)
        if job.submitted_at is None:
            return 0.0
        started = to_ms(job.submitted_at) + (status.delay_time_ms or 0)
        return max(0.0, self._redis_now_ms() - started)

    async def _result(self, job: TrackedJob, status: Job, outcome: JobState) -> JobResult:
        if outcome is not JobState.COMPLETED:
            reason = status.error_message or _default_reason(outcome)
            return JobResult(outcome, reason=reason)
        if status.execution_time_ms:
            self.executions.observe(job.endpoint_id, status.execution_time_ms)
        self._finishes.setdefault(job.endpoint_id, deque()).append(time.monotonic())
        allowed = self._image_cap(job)
        try:
            # Images beyond the cap are never downloaded or decoded: memory stays bounded by the cap.
            extraction = await extract_output(
                status.output, session=self.http, policy=self.fetch_policy, max_images=allowed
            )
        except OutputError as exc:
            log.warning("job %s: output unusable: %s", job.jid, exc)
            return JobResult(JobState.FAILED, reason=str(exc) or NO_IMAGE_REASON)
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
        delivering = await self._write(
            FinalizeBegin(
                claim, result.outcome, lease_ms=self.policy.delivery_lease_ms, fields=fields, execution_ms=execution_ms
            )
        )
        if not isinstance(delivering, Claimed):
            self._let_go(claim)
            return
        self._hold(delivering)
        await self._deliver(delivering, result)

    async def _deliver(self, claim: Claimed, result: JobResult) -> None:
        job = claim.job
        try:
            delivery = await self.notifier.job_finished(job, result)
        except Exception as exc:
            attempts = int(job.extra.get("delivery_attempts", 0)) + 1
            if isinstance(exc, DeliveryFailed) and exc.final:
                log.warning("job %s: delivery refused for good: %s", job.jid, exc.reason)
                await self._give_up_delivery(claim, result, exc.reason)
                return
            if attempts >= self.settings.max_delivery_attempts:
                log.exception("job %s: delivery failed %s times; giving up", job.jid, attempts)
                cause = exc.reason if isinstance(exc, DeliveryFailed) else UNDELIVERED_REASON
                await self._give_up_delivery(claim, result, f"{cause}; gave up after {attempts} attempts.")
                return
            log.exception("job %s: delivery failed (attempt %s); will retry", job.jid, attempts)
            delay = self.settings.delivery_retry_base_ms * 2 ** (attempts - 1)
            moved = await self._write(
                Reschedule(claim, delay, polled=False, fields={"extra": {**job.extra, "delivery_attempts": attempts}})
            )
            self._hold(moved if isinstance(moved, Claimed) else None)
            return
        fields: dict[str, Any] = {}
        if delivery.message_ids:
            fields["result_message_ids"] = delivery.message_ids
        if await self._write(FinalizeCommit(claim, fields=fields)) is not True:
            log.warning("job %s: delivered, but another process took the job meanwhile", job.jid)
        self._let_go(claim)

    async def _give_up_delivery(self, claim: Claimed, result: JobResult, reason: str) -> None:
        """End a job whose result cannot be delivered: show that (best effort), and record it with the job."""
        job = claim.job
        extra = {**job.extra, DELIVERY_FAILED_FIELD: reason}
        undelivered = JobResult(result.outcome, reason=result.reason, capped=result.capped, undelivered=reason)
        try:
            await self.notifier.job_finished(job.model_copy(update={"extra": extra}), undelivered)
        except Exception:
            log.exception("job %s: could not show that its result was not delivered", job.jid)
        await self._write(FinalizeCommit(claim, fields={"extra": extra}))
        self._let_go(claim)

    async def _redeliver(self, claim: Claimed) -> None:
        """A job whose delivery did not commit (a crash or a failed attempt): deliver it again."""
        job = claim.job
        if job.state is not JobState.COMPLETED:
            await self._deliver(claim, JobResult(job.state, reason=job.error or _default_reason(job.state)))
            return
        client = self.status_clients.get(job.endpoint_id)
        if client is None or job.runpod_id is None:
            return
        status = await self._status(client, job.runpod_id)
        if isinstance(status, NotFoundError):
            await self._deliver(claim, JobResult(JobState.EXPIRED, reason=expired_reason(job, status)))
        elif isinstance(status, RunPodError):
            await self._retry_later(claim, status)
        else:
            await self._deliver(claim, await self._result(job, status, JobState.COMPLETED))

    async def _retry_later(self, claim: Claimed, exc: RunPodError) -> None:
        """Check again later after a failed `/status`, unless the run of failures or the job's time is up."""
        job = claim.job
        kind = classify_status_error(exc)
        now_ms = self._redis_now_ms()
        errors = job.status_errors + 1
        since_ms = to_ms(job.status_error_since) if job.status_error_since is not None else round(now_ms)
        deadline_ms = self._deadline_ms(job) if job.state.is_live else None
        if deadline_ms is not None and now_ms >= deadline_ms:
            log.warning("job %s: status checks still failing past its time limit; giving up: %s", job.jid, exc)
            reason = self._deadline_reason(job, now_ms, "RunPod's status checks of this job were still failing")
            await self._give_up(claim, reason)
            return
        if errors >= self.settings.min_errors_to_give_up and now_ms - since_ms >= self._error_life_ms(kind):
            reason = _status_error_reason(kind, exc, now_ms - since_ms)
            note = " A server admin needs to fix the bot's RunPod API key." if kind is StatusErrorKind.AUTH else ""
            log.warning("job %s: %s status checks failed in a row; giving up: %s", job.jid, errors, exc)
            if job.state.is_live:
                await self._give_up(claim, reason + GAVE_UP + note)
            else:
                # A finished job whose images must be fetched again: nothing runs at RunPod any more.
                lost = reason + ", so its images are lost." + note
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
            self._write(RecordError(job.endpoint_id, str(exc))),
            self._write(Reschedule(claim, delay, polled=False, fields=fields)),
        )
        self._hold(moved if isinstance(moved, Claimed) else None)

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

    @staticmethod
    def _queue_deadline_ms(job: TrackedJob) -> float | None:
        if job.submitted_at is None or job.max_queue_wait_ms is None:
            return None
        return to_ms(job.submitted_at) + job.max_queue_wait_ms

    @staticmethod
    def _deadline_reason(job: TrackedJob, now_ms: float, what: str) -> str:
        limit = f"{_duration(job.ttl_ms)} from submission, " if job.ttl_ms is not None else ""
        late = _duration(now_ms - (_ttl_end_ms(job) or now_ms))
        return f"{what} {late} after its time limit ({limit}when RunPod deletes a job whatever its state)" + GAVE_UP

    async def _give_up(self, claim: Claimed, reason: str) -> None:
        """End a live job FAILED with `reason` (its member's quota slot is freed), after one /cancel at RunPod."""
        job = claim.job
        client = self.status_clients.get(job.endpoint_id)
        if client is not None and job.runpod_id is not None:
            try:
                async with asyncio.timeout(GIVE_UP_CANCEL_TIMEOUT_S):
                    await client.cancel(job.runpod_id)
            except (NotFoundError, NotSupportedError):
                pass
            except (RunPodError, TimeoutError) as exc:
                log.warning("job %s: /cancel of a job given up failed: %s", job.jid, str(exc) or "timed out")
        await self._finish(claim, JobResult(JobState.FAILED, reason=reason))

    async def _cancel_at_runpod(self, job: TrackedJob) -> bool:
        """Send `/cancel`; False when the server has none (RunPod's local worker server)."""
        client = self.clients.get(job.endpoint_id)
        if job.runpod_id is None or client is None:
            return True
        try:
            await client.cancel(job.runpod_id)
        except NotFoundError:
            pass
        except NotSupportedError:
            return False
        except RunPodError as exc:
            log.warning("job %s: /cancel failed: %s", job.jid, exc)
        return True

    async def _tell_updated(self, job: TrackedJob) -> None:
        try:
            await self.notifier.job_updated(job)
        except Exception:
            log.exception("job %s: progress notification failed", job.jid)

    async def _refresh_samples(self) -> None:
        """Learn from the execution times every process recorded (at start, then every `samples_refresh_s`)."""
        now = time.monotonic()
        if self._samples_loaded_at is not None and now - self._samples_loaded_at < self.settings.samples_refresh_s:
            return
        self._samples_loaded_at = now
        for endpoint_id in self.endpoint_ids:
            try:
                self.executions.load(endpoint_id, await self.store.execution_samples(endpoint_id))
            except Exception:
                log.exception("endpoint %s: reading execution times failed", endpoint_id)


class _Writer:
    """Coalesces the poller's writes into one `JobStore.apply` round trip.

    A write waits while any `/status` call of the poller is in flight (its outcome is probably a write of the same
    cycle), but never more than `window_s`; then every pending write goes in one call. A reschedule's delay counts
    from when it was decided, not from when it was written.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        window_s: float,
        busy: Callable[[], bool],
        stats: PollerStats,
        tasks: BackgroundTasks,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._window_s = window_s
        self._busy = busy
        self._stats = stats
        self._pending: list[tuple[StoreOp, float, asyncio.Future[OpResult]]] = []
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def write(self, op: StoreOp) -> OpResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[OpResult] = loop.create_future()
        self._pending.append((op, loop.time(), future))
        self.poke()
        if self._task is None or self._task.done():
            self._task = self._tasks.spawn(self._flush_all(), name="poller-writes")
        return await future

    def poke(self) -> None:
        """Something this writer waits for happened (a `/status` call ended): check again."""
        self._kick.set()

    async def _flush_all(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                deadline = self._pending[0][1] + self._window_s
                while self._busy() and (remaining := deadline - loop.time()) > 0:
                    self._kick.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await self._kick.wait()
                batch, self._pending = self._pending, []
                await self._flush(batch, loop.time())
        finally:
            # Only reached with writes pending if this task was cancelled: fail them rather than hang.
            for _op, _at, future in self._pending:
                if not future.done():
                    future.set_exception(RuntimeError("the poller's writer stopped"))
            self._pending = []

    async def _flush(self, batch: list[tuple[StoreOp, float, asyncio.Future[OpResult]]], now: float) -> None:
        ops = [_aged(op, now - at) for op, at, _future in batch]
        self._stats.write_flushes += 1
        self._stats.writes += len(ops)
        try:
            results = await self._store.apply(ops)
        except Exception as exc:
            for _op, _at, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_op, _at, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _aged(op: StoreOp, waited_s: float) -> StoreOp:
    if isinstance(op, Reschedule) and waited_s > 0:
        return replace(op, delay_ms=max(0, round(op.delay_ms - waited_s * 1000)))
    return op


def _ttl_end_ms(job: TrackedJob) -> float | None:
    """When RunPod deletes the job: its policy.ttl after the submit (RunPod's longest ttl for older records)."""
    if job.submitted_at is None:
        return None
    return to_ms(job.submitted_at) + (job.ttl_ms if job.ttl_ms is not None else MAX_POLICY_TTL_MS)


def expired_reason(job: TrackedJob, error: NotFoundError | None = None) -> str:
    """Why a job RunPod answers 404 for lost its images: RunPod's two deletion rules, with this job's time limit (or
    the local worker server's one answer per job, or /runsync's one minute)."""
    if isinstance(error, ResultLostError):
        return RESULT_LOST_REASON
    if is_sync_id(job.runpod_id):
        return SYNC_EXPIRED_REASON
    if job.ttl_ms is None:
        return EXPIRED_REASON
    return EXPIRED_REASON.removesuffix(".") + f" ({_duration(job.ttl_ms)} after it was submitted)."


def _queue_wait_reason(job: TrackedJob) -> str:
    limit = _duration(job.max_queue_wait_ms or 0)
    return (
        f"No GPU worker started this job within {limit} (how long this bot lets a job wait in the queue), so the bot "
        "asked RunPod to cancel it before it could run. Please try again later."
    )


def _status_error_reason(kind: StatusErrorKind, exc: RunPodError, lasted_ms: float) -> str:
    """What a member reads when failed status checks end a job (no body text: it may be anything)."""
    lasted = _duration(lasted_ms)
    status = exc.status if isinstance(exc, RunPodAPIError) else 0
    if kind is StatusErrorKind.AUTH:
        return f"RunPod kept rejecting the bot's API key (HTTP {status}) for {lasted}"
    if kind is StatusErrorKind.RATE_LIMITED:
        return f"RunPod kept refusing this job's status checks over its rate limit (HTTP 429) for {lasted}"
    if kind is StatusErrorKind.UNREADABLE:
        return f"RunPod's answers to this job's status checks could not be read for {lasted}"
    if kind is StatusErrorKind.UNREACHABLE:
        return f"RunPod could not be reached to check on this job for {lasted}"
    return f"RunPod kept answering {_http_status(status)} to this job's status checks for {lasted}"


def _http_status(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _duration(ms: float) -> str:
    """A duration as a member reads it: "45 seconds", "12 minutes", "3 hours", "2 days"."""
    seconds = max(1, round(ms / 1000))
    for unit, size, up_to in (("second", 1, 120), ("minute", 60, 120 * 60), ("hour", 3600, 48 * 3600)):
        if seconds < up_to:
            count = round(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    days = round(seconds / 86400)
    return f"{days} day{'' if days == 1 else 's'}"


def _default_reason(state: JobState) -> str:
    return {
        JobState.FAILED: "The worker failed without saying why.",
        JobState.CANCELLED: "The job was cancelled.",
        JobState.TIMED_OUT: "The job ran longer than the endpoint's execution timeout.",
        JobState.EXPIRED: EXPIRED_REASON,
        JobState.SUBMIT_UNKNOWN: SUBMIT_UNKNOWN_REASON,
    }.get(state, "The job ended.")


def _typed(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key in TrackedJob.model_fields}
