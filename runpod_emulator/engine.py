"""The emulated endpoint's state: jobs, a FIFO queue, a pool of workers, retention, webhooks, faults and counters.

Everything runs on one event loop; only image drawing goes to a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import string
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from PIL import Image

from runpod_emulator.config import (
    DEFAULT_EXECUTION_TIMEOUT_MS,
    DEFAULT_TTL_MS,
    OPERATIONS,
    EmulatorConfig,
    FaultKind,
    ProgressStyle,
    Scenario,
    sample,
)
from runpod_emulator.images import corrupt_pixels, enlarge_png, open_source, render_png
from runpod_emulator.personalities import (
    InvalidJobInput,
    JobPlan,
    Outcome,
    OutputContext,
    RenderedImage,
    SourcePlan,
    plan_job,
)
from runpod_emulator.tasks import BackgroundTasks

log = logging.getLogger(__name__)

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"
LIVE_STATES = (IN_QUEUE, IN_PROGRESS)
STATES = (IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT)

# RunPod's policy bounds (checked unless the scenario relaxes them for fast tests).
MIN_TTL_MS = 10_000
MAX_POLICY_MS = 7 * 24 * 3600 * 1000
MIN_EXECUTION_TIMEOUT_MS = 5_000

SWEEP_INTERVAL_S = 1.0
# A source image an img2img worker downloads: how long it may take and how large it may be.
SOURCE_TIMEOUT_S = 10.0
MAX_SOURCE_BYTES = 50 * 1024 * 1024
HTTP_OK = 200
WORKER_ID_CHARS = string.ascii_lowercase + string.digits
WORKER_ID_LENGTH = 14
MAX_WEBHOOK_RECORDS = 10_000
# Published images (the URL output shapes) are kept up to this many bytes, oldest dropped first.
MAX_FILE_STORE_BYTES = 512 * 1024 * 1024
WEBHOOK_OK = 200

WORKER_COLD = "cold"
WORKER_INITIALIZING = "initializing"
WORKER_IDLE = "idle"
WORKER_RUNNING = "running"


class InvalidRequest(ValueError):
    """The request is malformed for RunPod: answered with 400 and this message."""


@dataclass(eq=False)
class EmulatedJob:
    """One job as the emulator keeps it."""

    id: str
    input: dict[str, Any]
    plan: JobPlan
    sync: bool
    webhook: str | None
    submitted_at: float
    ttl_s: float
    execution_timeout_s: float
    # The `policy` object of the /run request, as received.
    policy: dict[str, Any] = field(default_factory=dict)
    status: str = IN_QUEUE
    queued_at: float = 0.0
    eligible_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None
    output: Any = None
    has_output: bool = False
    error: Any = None
    worker_id: str | None = None
    retries: int = 0
    # Bumped by cancel, retry, purge and expiry: a run that started under an older attempt may not write.
    attempt: int = 0
    result_ttl_s: float | None = None
    expires_at: float = math.inf
    stream: list[Any] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def gone(self, now: float) -> bool:
        """Whether RunPod would have deleted the job by now (its policy.ttl, or its result's retention)."""
        return now >= self.submitted_at + self.ttl_s or now >= self.expires_at

    def view(self) -> dict[str, Any]:
        """The job object as /status returns it."""
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.delay_ms is not None:
            body["delayTime"] = self.delay_ms
        if self.execution_ms is not None:
            body["executionTime"] = self.execution_ms
        if self.has_output:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        if self.worker_id is not None:
            body["workerId"] = self.worker_id
        if self.retries:
            body["retries"] = self.retries
        return body


@dataclass(eq=False)
class Worker:
    """One emulated GPU worker."""

    id: str
    state: str = WORKER_COLD
    warm_until: float = 0.0
    retired: bool = False

    def is_warm(self, now: float) -> bool:
        return self.state == WORKER_IDLE and now < self.warm_until

    def is_free(self) -> bool:
        return not self.retired and self.state in (WORKER_COLD, WORKER_IDLE)


class Counters:
    """What happened, for tests and benchmarks: requests per operation and status, job totals, terminal times."""

    def __init__(self) -> None:
        self.received: dict[str, int] = defaultdict(int)
        self.requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.totals: dict[str, int] = defaultdict(int)
        self.terminal: dict[str, dict[str, Any]] = {}
        self.webhooks: deque[dict[str, Any]] = deque(maxlen=MAX_WEBHOOK_RECORDS)

    def record_arrival(self, operation: str) -> None:
        self.received[operation] += 1

    def record_request(self, operation: str, status: str) -> None:
        self.requests[operation][status] += 1

    def request_count(self, operation: str, status: int | str | None = None) -> int:
        """How many requests an operation received, or how many were answered with `status` (an HTTP code,
        "reset" or "garbled"). A request still in flight (a slow reply) counts as received but has no status yet."""
        if status is None:
            return self.received.get(operation, 0)
        return self.requests.get(operation, {}).get(str(status), 0)

    def record_terminal(self, job: EmulatedJob) -> None:
        now = datetime.now(UTC)
        self.terminal[job.id] = {"status": job.status, "at": now.isoformat(), "epoch": now.timestamp()}
        self.totals[job.status.lower()] += 1

    def record_webhook(self, job_id: str, attempt: int, status: int | None) -> None:
        self.webhooks.append(
            {"job_id": job_id, "attempt": attempt, "status": status, "at": datetime.now(UTC).isoformat()}
        )
        self.totals["webhook_attempts"] += 1
        self.totals["webhook_delivered" if status == WEBHOOK_OK else "webhook_failures"] += 1


class Engine:
    """The emulated endpoint behind the HTTP layer."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.public_url = config.public_url or ""
        self._scenario = config.scenario
        self._jobs: dict[str, EmulatedJob] = {}
        self._queue: deque[tuple[EmulatedJob, int]] = deque()
        self._workers: list[Worker] = []
        self._tasks = BackgroundTasks()
        self._wake = asyncio.Event()
        self._files: dict[str, bytes] = {}
        self._file_bytes = 0
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._inflight: dict[str, int] = defaultdict(int)
        self._next_sweep = 0.0
        self._http: aiohttp.ClientSession | None = None
        self._rng = random.Random()
        self._fault_rngs: dict[str, random.Random] = {}
        self._fault_script: dict[str, deque[FaultKind]] = {}
        self._apply_scenario(config.scenario, reseed=True)

    # ----- life cycle -----

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._tasks.spawn(self._dispatch_loop(), name="emulator-dispatcher")

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        if self._http is not None:
            await self._http.close()

    @property
    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    # ----- scenario -----

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    def set_scenario(self, scenario: Scenario) -> None:
        """Replace the scenario: reseeds the generators, resizes the pool, restarts the fault scripts."""
        self._apply_scenario(scenario, reseed=True)
        self._wake.set()

    def _apply_scenario(self, scenario: Scenario, *, reseed: bool) -> None:
        self._scenario = scenario
        if reseed:
            self._rng = random.Random(scenario.seed)
            # One generator per operation: traffic on one operation does not shift another's faults.
            self._fault_rngs = {op: random.Random(f"{scenario.seed}:{op}") for op in OPERATIONS}
        self._fault_script = {op: deque(kinds) for op, kinds in scenario.fault_script.items()}
        self._resize_pool(scenario.workers)

    def _resize_pool(self, size: int) -> None:
        active = [worker for worker in self._workers if not worker.retired]
        for _ in range(size - len(active)):
            self._workers.append(Worker(id=self._worker_id()))
        if len(active) > size:
            # Retire free workers first; a busy one leaves when its job is done.
            ordered = sorted(active, key=lambda worker: not worker.is_free())
            for worker in ordered[: len(active) - size]:
                worker.retired = True
            idle_states = (WORKER_COLD, WORKER_IDLE)
            self._workers = [w for w in self._workers if not (w.retired and w.state in idle_states)]

    def _worker_id(self) -> str:
        return "".join(self._rng.choice(WORKER_ID_CHARS) for _ in range(WORKER_ID_LENGTH))

    def script_faults(self, operation: str, kinds: list[FaultKind]) -> None:
        """Make the next requests to `operation` meet these faults, in order (after any already scripted)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        self._fault_script.setdefault(operation, deque()).extend(kinds)

    def next_fault(self, operation: str) -> FaultKind:
        script = self._fault_script.get(operation)
        if script:
            return script.popleft()
        rates = self._scenario.faults.get(operation)
        if rates is None:
            return FaultKind.NONE
        return rates.pick(self._fault_rngs[operation].random())

    def reset(self) -> None:
        """Forget every job, file and counter; keep the scenario (generators reseeded)."""
        for job in self._jobs.values():
            job.attempt += 1
        self._jobs.clear()
        self._queue.clear()
        self._files.clear()
        self._file_bytes = 0
        self._hits.clear()
        self.counters = Counters()
        self._apply_scenario(self._scenario, reseed=True)
        self._wake.set()

    # ----- rate limits -----

    def admit(self, operation: str) -> float | None:
        """Count a request against the operation's limits: None when admitted, else seconds to wait."""
        limit = self._scenario.rate_limits.get(operation)
        if limit is None:
            return None
        now = self.loop_time
        hits = self._hits[operation]
        while hits and hits[0] <= now - limit.per_s:
            hits.popleft()
        if len(hits) >= limit.requests:
            return max(hits[0] + limit.per_s - now, 0.0)
        if limit.concurrent is not None and self._inflight[operation] >= limit.concurrent:
            return 1.0
        hits.append(now)
        return None

    @contextlib.contextmanager
    def in_flight(self, operation: str) -> Any:
        self._inflight[operation] += 1
        try:
            yield
        finally:
            self._inflight[operation] -= 1

    # ----- jobs -----

    def submit(self, body: Any, *, sync: bool) -> EmulatedJob:
        """Create a job from a /run or /runsync body; raises `InvalidRequest` for what RunPod would refuse."""
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            raise InvalidRequest("the body must be a JSON object with an `input` object")
        webhook = body.get("webhook")
        if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))):
            raise InvalidRequest("`webhook` must be an http(s) URL")
        ttl_ms, timeout_ms = self._policy(body.get("policy"))
        try:
            plan = plan_job(body["input"], self._scenario, self._rng)
        except InvalidJobInput as exc:
            raise InvalidRequest(str(exc)) from None
        now = self.loop_time
        job_id = f"{'sync-' if sync else ''}{uuid.uuid4()}-u1"
        job = EmulatedJob(
            id=job_id,
            input=body["input"],
            plan=plan,
            sync=sync,
            webhook=webhook,
            submitted_at=now,
            ttl_s=ttl_ms / 1000 if self._scenario.enforce_ttl else math.inf,
            execution_timeout_s=timeout_ms / 1000,
            policy=dict(body.get("policy") or {}),
        )
        self._jobs[job.id] = job
        self.counters.totals["submitted"] += 1
        self._enqueue(job, now)
        return job

    def _policy(self, policy: Any) -> tuple[float, float]:
        if policy is None:
            policy = {}
        if not isinstance(policy, dict):
            raise InvalidRequest("`policy` must be an object")
        ttl = policy.get("ttl", DEFAULT_TTL_MS)
        timeout = policy.get("executionTimeout", DEFAULT_EXECUTION_TIMEOUT_MS)
        for name, value in (("ttl", ttl), ("executionTimeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidRequest(f"policy.{name} must be a positive number of milliseconds")
        if self._scenario.strict_limits:
            if not MIN_TTL_MS <= ttl <= MAX_POLICY_MS:
                raise InvalidRequest(f"policy.ttl must be between {MIN_TTL_MS} and {MAX_POLICY_MS} ms")
            if not MIN_EXECUTION_TIMEOUT_MS <= timeout <= MAX_POLICY_MS:
                raise InvalidRequest(
                    f"policy.executionTimeout must be between {MIN_EXECUTION_TIMEOUT_MS} and {MAX_POLICY_MS} ms"
                )
        return float(ttl), float(timeout)

    def _enqueue(self, job: EmulatedJob, now: float) -> None:
        job.queued_at = now
        job.eligible_at = now + sample(self._scenario.queue_delay_s, self._rng)
        self._queue.append((job, job.attempt))
        self._wake.set()

    def find(self, job_id: str) -> EmulatedJob | None:
        """The job, unless it never existed or RunPod would have deleted it by now."""
        self.sweep()
        job = self._jobs.get(job_id)
        if job is not None and job.gone(self.loop_time):
            self._forget(job)
            return None
        return job

    def sweep(self) -> None:
        """Delete expired jobs (at most once a second)."""
        now = self.loop_time
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_S
        for job in [job for job in self._jobs.values() if job.gone(now)]:
            self._forget(job)

    def _forget(self, job: EmulatedJob) -> None:
        if self._jobs.pop(job.id, None) is not None:
            job.attempt += 1
            self.counters.totals["expired"] += 1
            self._wake.set()

    def status_view(self, job: EmulatedJob, ttl_ms: float | None) -> dict[str, Any]:
        if ttl_ms is not None:
            # /status?ttl=ms: keep the result that long, counted from now once the job has finished.
            job.result_ttl_s = ttl_ms / 1000
            if job.finished_at is not None:
                job.expires_at = self.loop_time + job.result_ttl_s
        return job.view()

    def stream_view(self, job: EmulatedJob) -> dict[str, Any]:
        items, job.stream = job.stream, []
        return {"status": job.status, "stream": [{"output": item} for item in items]}

    def cancel(self, job: EmulatedJob) -> None:
        """Cancel a live job; a finished one keeps its state. A result that lands later is dropped."""
        if job.status not in LIVE_STATES:
            return
        job.attempt += 1
        job.has_output, job.output = False, None
        self._finish(job, CANCELLED)
        self._wake.set()

    def retry(self, job: EmulatedJob) -> None:
        """Queue a FAILED or TIMED_OUT job again under its id."""
        if job.status not in (FAILED, TIMED_OUT):
            raise InvalidRequest(f"job {job.id} is {job.status}: only FAILED or TIMED_OUT jobs can be retried")
        job.attempt += 1
        job.retries += 1
        job.status = IN_QUEUE
        job.started_at = job.finished_at = None
        job.delay_ms = job.execution_ms = None
        job.output, job.has_output, job.error, job.worker_id = None, False, None, None
        job.expires_at = math.inf
        job.finished = asyncio.Event()
        self.counters.totals["retried"] += 1
        self._enqueue(job, self.loop_time)

    def purge(self) -> int:
        """Remove every queued job (they are deleted: /status answers 404); running jobs continue."""
        queued = [job for job in self._jobs.values() if job.status == IN_QUEUE]
        for job in queued:
            del self._jobs[job.id]
            job.attempt += 1
        self._queue = deque(entry for entry in self._queue if entry[0].id in self._jobs)
        self.counters.totals["purged"] += len(queued)
        self._wake.set()
        return len(queued)

    async def wait_finished(self, job: EmulatedJob, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.finished.wait(), timeout_s)

    def health(self) -> dict[str, Any]:
        self.sweep()
        now = self.loop_time
        states = [job.status for job in self._jobs.values()]
        idle = sum(worker.is_warm(now) and not worker.retired for worker in self._workers)
        running = sum(worker.state == WORKER_RUNNING for worker in self._workers)
        totals = self.counters.totals
        return {
            "jobs": {
                "completed": totals["completed"],
                "failed": totals["failed"] + totals["timed_out"],
                "inProgress": states.count(IN_PROGRESS),
                "inQueue": states.count(IN_QUEUE),
                "retried": totals["retried"],
            },
            "workers": {
                "idle": idle,
                "initializing": sum(worker.state == WORKER_INITIALIZING for worker in self._workers),
                "ready": idle + running,
                "running": running,
                "throttled": self._scenario.throttled_workers,
                "unhealthy": self._scenario.unhealthy_workers,
            },
        }

    def jobs_by_state(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for job in self._jobs.values():
            counts[job.status] += 1
        return counts

    def job(self, job_id: str) -> EmulatedJob | None:
        """Direct access for tests (no expiry applied)."""
        return self._jobs.get(job_id)

    def snapshot(self) -> dict[str, Any]:
        """The counters as /_emulator/counters returns them."""
        return {
            "received": dict(self.counters.received),
            "requests": {op: dict(statuses) for op, statuses in self.counters.requests.items()},
            "jobs": self.jobs_by_state(),
            "totals": dict(self.counters.totals),
            "terminal": dict(self.counters.terminal),
            "webhooks": list(self.counters.webhooks),
            "queue_length": sum(1 for job, attempt in self._queue if job.attempt == attempt),
            "workers": [{"id": worker.id, "state": worker.state} for worker in self._workers],
        }

    # ----- files (the URL output shapes) -----

    def file(self, name: str) -> bytes | None:
        return self._files.get(name)

    def _store_file(self, name: str, data: bytes) -> None:
        self._files[name] = data
        self._file_bytes += len(data)
        while self._file_bytes > MAX_FILE_STORE_BYTES and len(self._files) > 1:
            oldest = next(iter(self._files))
            self._file_bytes -= len(self._files.pop(oldest))

    # ----- scheduling -----

    async def _dispatch_loop(self) -> None:
        while True:
            self._wake.clear()
            wait_s = self._dispatch()
            if wait_s is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait_s)

    def _dispatch(self) -> float | None:
        """Give queued jobs to free workers, oldest first; return how long until the head may start."""
        now = self.loop_time
        while self._queue:
            job, attempt = self._queue[0]
            if job.attempt != attempt or job.status != IN_QUEUE or job.id not in self._jobs:
                self._queue.popleft()
                continue
            if job.gone(now):
                self._queue.popleft()
                self._forget(job)
                continue
            if job.eligible_at > now:
                return job.eligible_at - now
            free = [worker for worker in self._workers if worker.is_free()]
            if not free:
                return None
            worker = next((w for w in free if w.is_warm(now)), free[0])
            worker.state = WORKER_RUNNING if worker.is_warm(now) else WORKER_INITIALIZING
            self._queue.popleft()
            self._tasks.spawn(self._execute(job, attempt, worker), name=f"emulator-job-{job.id}")
        return None

    def _current(self, job: EmulatedJob, attempt: int) -> bool:
        if job.attempt != attempt or job.id not in self._jobs:
            return False
        if job.gone(self.loop_time):
            self._forget(job)
            return False
        return True

    async def _sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(when - self.loop_time, 0.0))

    async def _execute(self, job: EmulatedJob, attempt: int, worker: Worker) -> None:
        try:
            if worker.state == WORKER_INITIALIZING:
                await asyncio.sleep(sample(self._scenario.cold_start_s, self._rng))
                worker.state = WORKER_RUNNING
                if not self._current(job, attempt):
                    return
            await self._run(job, attempt, worker)
        finally:
            worker.state = WORKER_IDLE
            worker.warm_until = self.loop_time + self._scenario.idle_timeout_s
            if worker.retired:
                self._workers = [other for other in self._workers if other is not worker]
            self._wake.set()

    async def _run(self, job: EmulatedJob, attempt: int, worker: Worker) -> None:
        plan = job.plan
        start = self.loop_time
        job.status = IN_PROGRESS
        job.started_at = start
        job.delay_ms = round((start - job.queued_at) * 1000)
        job.worker_id = worker.id
        deadline = start + job.execution_timeout_s
        end = start + plan.execution_s
        if plan.progress != ProgressStyle.NONE:
            for step in range(1, plan.steps):
                at = start + plan.execution_s * step / plan.steps
                if at >= deadline:
                    break
                await self._sleep_until(at)
                if not self._current(job, attempt):
                    return
                job.output, job.has_output = progress_value(plan.progress, step, plan.steps), True
        if plan.personality.outcome == Outcome.HANG or end >= deadline:
            await self._sleep_until(deadline)
            if self._current(job, attempt):
                job.has_output, job.output = False, None
                self._finish(job, TIMED_OUT)
            return
        await self._sleep_until(end)
        if not self._current(job, attempt):
            return
        status, output, has_output, error, files = await self._produce(job, worker)
        for name, data in files:
            self._store_file(name, data)
        # A cancelled, purged or expired job keeps its state: this late result is dropped.
        if not self._current(job, attempt):
            return
        if self.loop_time >= deadline:
            job.has_output, job.output = False, None
            self._finish(job, TIMED_OUT)
            return
        job.output, job.has_output, job.error = output, has_output, error
        self._finish(job, status)

    async def _produce(self, job: EmulatedJob, worker: Worker) -> tuple[str, Any, bool, Any, list[tuple[str, bytes]]]:
        """The job's result: (status, output, has output, error, files to publish)."""
        personality = job.plan.personality
        if personality.outcome == Outcome.FAILED:
            error = personality.error(worker.id) if personality.error else "worker failed"
            failed_output = personality.failed_output
            return FAILED, failed_output, failed_output is not None, error, []
        if personality.outcome == Outcome.CUSTOM:
            return COMPLETED, job.plan.custom_output, job.plan.custom_output is not None, None, []
        if personality.outcome == Outcome.NO_OUTPUT or personality.shape is None:
            return COMPLETED, None, False, None, []
        source, source_error = await self._source_image(job.plan.source)
        if source_error is not None:
            return FAILED, None, False, source_error, []
        base = self.public_url
        elapsed = self.loop_time - (job.started_at or self.loop_time)
        output, files = await asyncio.to_thread(build_output, job.plan, base, elapsed, source)
        return COMPLETED, output, True, None, files

    async def _source_image(self, plan: SourcePlan | None) -> tuple[Image.Image | None, str | None]:
        """The job's source image as its worker gets it (downloaded, or uploaded with the input), or the error the
        worker fails the job with; (None, None) for a job that starts from text."""
        if plan is None:
            return None, None
        if plan.error is not None:
            return None, plan.error
        data = plan.data
        if plan.url is not None:
            data = await self._download_source(plan.url)
            if data is None:
                return None, None if plan.optional else f"cannot identify image file from {plan.url}"
        image = await asyncio.to_thread(open_source, data or b"")
        if image is None:
            return None, None if plan.optional else "cannot identify image file (the source image is not an image)"
        return image, None

    async def _download_source(self, url: str) -> bytes | None:
        """The bytes at a source image's URL; None when the download fails (as the worker's would)."""
        if self._http is None:
            raise RuntimeError("the emulator engine is not started")
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=SOURCE_TIMEOUT_S)) as response:
                if response.status != HTTP_OK:
                    return None
                data = await response.content.read(MAX_SOURCE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError):
            return None
        return None if len(data) > MAX_SOURCE_BYTES else data

    def _finish(self, job: EmulatedJob, status: str) -> None:
        now = self.loop_time
        job.status = status
        job.finished_at = now
        if job.started_at is not None:
            job.execution_ms = round((now - job.started_at) * 1000)
        if job.result_ttl_s is not None:
            retention = job.result_ttl_s
        else:
            retention = self._scenario.runsync_retention_s if job.sync else self._scenario.retention_s
        job.expires_at = now + retention
        if status == COMPLETED and job.has_output:
            job.stream.append(job.output)
        self.counters.record_terminal(job)
        job.finished.set()
        if job.webhook:
            self._tasks.spawn(self._deliver_webhook(job.webhook, job.id, job.view()), name=f"emulator-webhook-{job.id}")

    async def _deliver_webhook(self, url: str, job_id: str, body: dict[str, Any]) -> None:
        """POST the job to its webhook; a non-200 reply is retried (twice, 10 s apart, by default)."""
        scenario = self._scenario
        if self._http is None:
            raise RuntimeError("the emulator engine is not started")
        attempts = scenario.webhook_retries + 1
        for attempt in range(1, attempts + 1):
            status: int | None = None
            try:
                async with self._http.post(
                    url, json=body, timeout=aiohttp.ClientTimeout(total=scenario.webhook_timeout_s)
                ) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The URL may carry the receiver's secret token: name the job, not the URL.
                log.info("webhook for job %s, attempt %d/%d failed: %s", job_id, attempt, attempts, type(exc).__name__)
            self.counters.record_webhook(job_id, attempt, status)
            if status == WEBHOOK_OK:
                return
            if attempt < attempts:
                await asyncio.sleep(scenario.webhook_retry_delay_s)


def progress_value(style: ProgressStyle, step: int, steps: int) -> Any:
    """What a worker's progress_update puts in `output` at a step."""
    if style == ProgressStyle.DICT:
        return {"step": step, "steps": steps}
    if style == ProgressStyle.PERCENT:
        return f"{round(100 * step / steps)}%"
    return f"{step}/{steps}"


def build_output(
    plan: JobPlan, base_url: str, elapsed_s: float, source: Image.Image | None = None
) -> tuple[Any, list[tuple[str, bytes]]]:
    """Draw the job's images and shape its output (runs in a worker thread); returns the files to publish.

    With a source image, the images are drawn at its size and show it (img2img workers draw at the source's size)."""
    width, height = (source.width, source.height) if source is not None else (plan.width, plan.height)
    files: list[tuple[str, bytes]] = []

    def publish(data: bytes) -> str:
        name = f"{uuid.uuid4().hex}.png"
        files.append((name, data))
        return f"{base_url}/_emulator/files/{name}"

    images = []
    if plan.upscale is not None and source is not None:
        # An upscaler: the source enlarged, one image.
        images.append(RenderedImage(data=enlarge_png(source, plan.upscale), seed=plan.seed))
    for index in range(0 if images else plan.images):
        data = render_png(
            plan.prompt,
            plan.seed + index,
            width,
            height,
            label=f"{plan.personality.name} · image {index + 1}/{plan.images}",
            min_bytes=plan.min_bytes,
            background=source,
        )
        if plan.personality.corrupt:
            data = corrupt_pixels(data)
        images.append(RenderedImage(data=data, seed=plan.seed + index))
    if plan.personality.shape is None:
        raise ValueError(f"personality {plan.personality.name} has no output shape")
    context = OutputContext(images=images, publish=publish, parameters=plan.parameters, generation_time_s=elapsed_s)
    return plan.personality.shape(context), files
