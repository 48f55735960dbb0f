"""`Poller`: claims due jobs, polls RunPod, moves their state, and hands finished jobs to the notifier.

Guarantees (with the store's): a job is handled by one process at a time; a finished job's `job_finished` runs
until one call returns, possibly more than once if a process dies mid-delivery (see `Notifier`); one failing job
never stops the loop; `stop()` gives back every lease it holds so another process takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from jobs.notifier import JobResult, Notifier
from jobs.policy import ExecutionTimes, PollPolicy
from jobs.service import SUBMIT_UNKNOWN_REASON
from jobs.tasks import spawn
from runpod_client import (
    AuthenticationError,
    Job,
    JobStatus,
    NotFoundError,
    RateLimitedError,
    RunPodClient,
    RunPodError,
)
from runpod_client.outputs import FetchPolicy, OutputError, extract_images, parse_progress
from storage.models import JobState, TrackedJob
from storage.store import Claimed, JobStore

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
DEFAULT_BATCH = 100
DEFAULT_CLAIM_LEASE_MS = 30_000
# 80% of RunPod's 2000 /status per 10 s, shared by every process through Redis.
DEFAULT_STATUS_BUDGET_PER_S = 160
DEFAULT_IDLE_SLEEP_S = 0.25
DEFAULT_MAX_DELIVERY_ATTEMPTS = 8
DELIVERY_RETRY_BASE_MS = 5_000
ERROR_RETRY_MS = 5_000
AUTH_ERROR_RETRY_MS = 60_000

EXPIRED_REASON = (
    "RunPod no longer has this job (results are kept 30 minutes after they finish), so its images are lost."
)
NO_IMAGE_REASON = "The worker finished without returning any image."

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
    idle_sleep_s: float = DEFAULT_IDLE_SLEEP_S
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS
    delivery_retry_base_ms: int = DELIVERY_RETRY_BASE_MS
    error_retry_ms: int = ERROR_RETRY_MS


class Poller:
    """One process's share of the tracking work. Several pollers on one Redis split the jobs between them."""

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
    ) -> None:
        self.store = store
        self.clients = clients
        self.notifier = notifier
        self.http = http
        self.fetch_policy = fetch_policy or FetchPolicy()
        self.policy = policy or PollPolicy()
        self.settings = settings or PollerSettings()
        self.executions = executions or ExecutionTimes()
        self.rng = rng or random.Random()
        self._held: dict[str, Claimed] = {}
        self._semaphore = asyncio.Semaphore(self.settings.concurrency)
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def endpoint_ids(self) -> list[str]:
        return sorted(self.clients)

    async def run(self) -> None:
        """Poll until `stop()`; a failing cycle is logged and the loop goes on."""
        while not self._stopping.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("poll cycle failed; retrying")
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.idle_sleep_s)

    async def run_once(self) -> int:
        """Claim what is due on every endpoint, start handling it, and return how many jobs were claimed."""
        claimed = 0
        for endpoint_id in self.endpoint_ids:
            free = self.settings.concurrency - len(self._in_flight)
            if free <= 0 or self._stopping.is_set():
                break
            batch = await self.store.claim_due(
                endpoint_id,
                limit=min(self.settings.batch, free),
                lease_ms=self.settings.claim_lease_ms,
                budget_per_second=self.settings.status_budget_per_s,
            )
            for claim in batch.jobs:
                self._held[claim.job.jid] = claim
                task = spawn(self._handle_guarded(claim), name=f"job-{claim.job.jid}")
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            claimed += len(batch.jobs)
        return claimed

    async def drain(self) -> None:
        """Wait for every job being handled to finish (tests and graceful shutdown)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming, let in-flight work finish for up to `timeout_s`, then release every lease still held."""
        self._stopping.set()
        if self._in_flight:
            _done, pending = await asyncio.wait(list(self._in_flight), timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        released = await self.store.release(list(self._held.values()))
        if released:
            log.info("released %s job leases for other processes", released)
        self._held.clear()

    async def _handle_guarded(self, claim: Claimed) -> None:
        async with self._semaphore:
            try:
                await self._handle(claim)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One failing job never stops the others; its lease runs out and it is tried again.
                log.exception("job %s: handling failed", claim.job.jid)
            finally:
                held = self._held.get(claim.job.jid)
                if held is not None and held.token <= claim.token:
                    self._held.pop(claim.job.jid, None)

    def _hold(self, claim: Claimed | None) -> None:
        if claim is not None:
            self._held[claim.job.jid] = claim

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
        client = self.clients.get(job.endpoint_id)
        if client is None or job.runpod_id is None:
            log.error("job %s: no client for endpoint %s; leaving it for another process", job.jid, job.endpoint_id)
            return
        if job.cancel_requested_by is not None:
            await self._cancel_at_runpod(client, job)
        try:
            status = await client.status(job.runpod_id)
        except NotFoundError:
            await self._finish(claim, JobResult(JobState.EXPIRED, reason=EXPIRED_REASON))
            return
        except RunPodError as exc:
            await self._retry_later(claim, exc)
            return
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
        state = JobState.RUNNING if running else JobState.QUEUED
        progress = parse_progress(status.output) if running else None
        progress_text = f"{progress.done:g}/{progress.total:g}" if progress is not None else None
        if running:
            delay = self.policy.running(
                elapsed_ms=self._elapsed_running_ms(job, status),
                progress=progress,
                typical_ms=self.executions.typical(job.endpoint_id),
                rng=self.rng,
            )
        else:
            delay = self.policy.queued(job.poll_count, rng=self.rng)
        fields: dict[str, Any] = {"runpod_status": status.status.value, "progress": progress_text, "error": None}
        if status.delay_time_ms is not None:
            fields["delay_time_ms"] = status.delay_time_ms
        if status.worker_id:
            fields["worker_id"] = status.worker_id
        moved = await self.store.reschedule(claim, delay, state=state, fields=fields)
        self._hold(moved)
        if moved is not None and (state is not job.state or progress_text != job.progress):
            updated = job.model_copy(update={"state": state, "progress": progress_text, **_typed(fields)})
            await self._tell_updated(updated)

    def _elapsed_running_ms(self, job: TrackedJob, status: Job) -> float:
        if status.execution_time_ms:
            return float(status.execution_time_ms)
        if job.submitted_at is None:
            return 0.0
        started = job.submitted_at.timestamp() * 1000 + (status.delay_time_ms or 0)
        return max(0.0, datetime.now(job.submitted_at.tzinfo).timestamp() * 1000 - started)

    async def _result(self, job: TrackedJob, status: Job, outcome: JobState) -> JobResult:
        if outcome is not JobState.COMPLETED:
            reason = status.error_message or _default_reason(outcome)
            return JobResult(outcome, reason=reason)
        if status.execution_time_ms:
            self.executions.observe(job.endpoint_id, status.execution_time_ms)
        try:
            images = await extract_images(status.output, session=self.http, policy=self.fetch_policy)
        except OutputError as exc:
            log.warning("job %s: output unusable: %s", job.jid, exc)
            return JobResult(JobState.FAILED, reason=str(exc) or NO_IMAGE_REASON)
        return JobResult(JobState.COMPLETED, images=images)

    async def _finish(self, claim: Claimed, result: JobResult, status: Job | None = None) -> None:
        fields: dict[str, Any] = {"error": result.reason}
        if status is not None:
            fields["runpod_status"] = status.status.value
            if status.delay_time_ms is not None:
                fields["delay_time_ms"] = status.delay_time_ms
            if status.execution_time_ms is not None:
                fields["execution_time_ms"] = status.execution_time_ms
            if status.worker_id:
                fields["worker_id"] = status.worker_id
        delivering = await self.store.finalize_begin(
            claim, result.outcome, lease_ms=self.policy.delivery_lease_ms, fields=fields
        )
        if delivering is None:
            self._held.pop(claim.job.jid, None)
            return
        self._hold(delivering)
        await self._deliver(delivering, result)

    async def _deliver(self, claim: Claimed, result: JobResult) -> None:
        job = await self.store.get(claim.job.jid)
        if job is None:
            return
        try:
            delivery = await self.notifier.job_finished(job, result)
        except Exception:
            attempts = int(job.extra.get("delivery_attempts", 0)) + 1
            if attempts >= self.settings.max_delivery_attempts:
                log.exception("job %s: delivery failed %s times; giving up", job.jid, attempts)
                await self.store.finalize_commit(claim, fields={"extra": {**job.extra, "delivery_failed": True}})
                self._held.pop(job.jid, None)
                return
            log.exception("job %s: delivery failed (attempt %s); will retry", job.jid, attempts)
            delay = self.settings.delivery_retry_base_ms * 2 ** (attempts - 1)
            claim = Claimed(job=job, token=claim.token)
            moved = await self.store.reschedule(
                claim, delay, polled=False, fields={"extra": {**job.extra, "delivery_attempts": attempts}}
            )
            self._hold(moved)
            return
        fields: dict[str, Any] = {}
        if delivery.message_ids:
            fields["result_message_ids"] = delivery.message_ids
        if not await self.store.finalize_commit(claim, fields=fields):
            log.warning("job %s: delivered, but another process took the job meanwhile", job.jid)
        self._held.pop(job.jid, None)

    async def _redeliver(self, claim: Claimed) -> None:
        """A job whose delivery did not commit (a crash or a failed attempt): deliver it again."""
        job = claim.job
        if job.state is not JobState.COMPLETED:
            await self._deliver(claim, JobResult(job.state, reason=job.error or _default_reason(job.state)))
            return
        client = self.clients.get(job.endpoint_id)
        if client is None or job.runpod_id is None:
            return
        try:
            status = await client.status(job.runpod_id)
        except NotFoundError:
            await self._deliver(claim, JobResult(JobState.EXPIRED, reason=EXPIRED_REASON))
            return
        except RunPodError as exc:
            await self._retry_later(claim, exc)
            return
        await self._deliver(claim, await self._result(job, status, JobState.COMPLETED))

    async def _retry_later(self, claim: Claimed, exc: RunPodError) -> None:
        await self.store.record_endpoint_error(claim.job.endpoint_id, str(exc))
        if isinstance(exc, AuthenticationError):
            log.error(
                "job %s: RunPod rejected the API key; retrying in %s s", claim.job.jid, AUTH_ERROR_RETRY_MS // 1000
            )
            delay = AUTH_ERROR_RETRY_MS
        elif isinstance(exc, RateLimitedError) and exc.retry_after:
            delay = int(exc.retry_after * 1000)
        else:
            log.warning("job %s: status check failed: %s", claim.job.jid, exc)
            delay = self.settings.error_retry_ms
        moved = await self.store.reschedule(claim, delay, polled=False)
        self._hold(moved)

    async def _cancel_at_runpod(self, client: RunPodClient, job: TrackedJob) -> None:
        if job.runpod_id is None:
            return
        try:
            await client.cancel(job.runpod_id)
        except NotFoundError:
            pass
        except RunPodError as exc:
            log.warning("job %s: /cancel failed: %s", job.jid, exc)

    async def _tell_updated(self, job: TrackedJob) -> None:
        try:
            await self.notifier.job_updated(job)
        except Exception:
            log.exception("job %s: progress notification failed", job.jid)


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
