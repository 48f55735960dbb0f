"""`Poller`: claims due jobs and runs each in its own task (`jobs.job_handler`), within this process's share.

Guarantees (with the store's): a job is handled by one process at a time, or, when a webhook takes it over, only
the newest holder can commit; a finished job's `job_finished` runs until one call returns, possibly more than once if
a process dies mid-delivery (see `Notifier`), or until delivery is given up (a final refusal, or too many failures),
when it is called once more to show that and the job ends; one failing job never stops the loop; `stop()` gives back
every lease it holds so another process takes over at once. Every job ends (see `jobs.job_handler`).

Cost: every process respects the endpoint's shared `/status` budget (a token bucket in Redis), and the writes that
follow a cycle's polls (reschedules, finalize begins and commits) are coalesced into one `JobStore.apply` round trip
(`jobs.writer`): a write waits until no `/status` call of this poller is in flight, or at most `write_window_ms`.
When to poll each job next is `jobs.policy`'s (`Pace`); every reason a member reads is `jobs.reasons`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Collection, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from jobs.defaults import DEFAULT_CLAIM_LEASE_MS, DEFAULT_CONCURRENCY, DEFAULT_STATUS_BUDGET_PER_S
from jobs.job_handler import JobHandler, Leases, PollerStats, ServerClock
from jobs.logcontext import current_job
from jobs.metrics import Metrics
from jobs.notifier import Notifier
from jobs.policy import ExecutionTimes, Pace, PollPolicy
from jobs.presets import ModelCatalog
from jobs.tasks import BackgroundTasks
from jobs.writer import Writer
from runpod_client import Job, RunPodClient
from runpod_client.outputs import FetchPolicy
from storage.store import DEFAULT_BURST_MS, Claimed, JobStore

log = logging.getLogger(__name__)

DEFAULT_BATCH = 100
# The budget bucket holds a quarter second of budget: at most 1.25 x the budget in any sliding second, and at most
# 10.25 x in any 10 s (1640 of RunPod's 2000 with the default budget).
DEFAULT_STATUS_BURST_MS = DEFAULT_BURST_MS
DEFAULT_IDLE_SLEEP_S = 0.25
MIN_PAUSE_S = 0.005
# Jobs that come due within this long of each other are claimed together: fewer, fuller cycles.
DEFAULT_CLAIM_COALESCE_MS = 25
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
# The longest a write waits for the other writes of its cycle (what batching may add to a result's lag).
DEFAULT_WRITE_WINDOW_MS = 50
# On stop, background work other than job handlers (lease hand-backs) gets this long before it is cancelled.
STOP_GRACE_S = 2.0
# How often the execution times every process recorded are read again.
DEFAULT_SAMPLES_REFRESH_S = 30.0


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


class Poller:
    """One process's share of the tracking work. Several pollers on one Redis split the jobs between them.

    `status_clients` (default: `clients`) make the `/status` calls; give them `retry=NO_RETRY` so that every
    attempt passes through the shared budget (the poller retries by rescheduling, which claims again). With `only`,
    the poller claims just those jobs (a command line waiting for its own job), never another process's.
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
        self._leases = Leases()
        self._semaphore = asyncio.Semaphore(self.settings.concurrency)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Job handlers, lease hand-backs and the write flusher: all this poller's, all ended by `stop()`.
        self._tasks = BackgroundTasks("poller")
        self._writer = Writer(
            store,
            window_s=self.settings.write_window_ms / 1000,
            busy=lambda: self._handler.statusing > 0,
            flushed=self._count_flush,
            tasks=self._tasks,
        )
        self._clock = ServerClock()
        self._handler = JobHandler(
            clients=clients,
            status_clients=self.status_clients,
            notifier=notifier,
            http=http,
            fetch_policy=self.fetch_policy,
            pace=Pace(self.policy, self.executions, self.rng),
            settings=self.settings,
            catalog=catalog,
            stats=self.stats,
            writer=self._writer,
            leases=self._leases,
            clock=self._clock,
            metrics=metrics,
        )
        self._sleep_s = self.settings.idle_sleep_s
        self._full = False
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
            self._clock.sync(batch.now_ms)
            self.stats.cycles += 1
            if batch.jobs:
                self.stats.busy_cycles += 1
                self.stats.claimed += len(batch.jobs)
            for claim in batch.jobs:
                self._start(claim, self._handler.handle(claim))
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
        self._start(claim, self._handler.apply(claim, status))

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
        released = await self.store.release(list(self._leases.held.values()))
        if released:
            log.info("released %s job leases for other processes", released)
        self._leases.held.clear()
        # Lease hand-backs still on their way get a moment to land; nothing this poller started outlives it.
        await self._tasks.close(timeout_s=STOP_GRACE_S)

    def _start(self, claim: Claimed, work: Coroutine[Any, Any, None]) -> None:
        self._leases.hold(claim)
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
            self._leases.let_go(claim)

    def _count_flush(self, writes: int) -> None:
        self.stats.write_flushes += 1
        self.stats.writes += writes

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
