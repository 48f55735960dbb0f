"""How well the bot tracks many jobs: result lag, `/status` calls per job, rate limits, CPU, memory and Redis.

    python -m benchmarks.tracking --scenario {busy,scale,fast} --mode {naive,poll,webhook,sync} [--compare]
                                  [--no-progress] [--seed N]

The RunPod emulator runs as a separate process (its CPU is not counted); this process runs the bot side: the core
as the composition root builds it (`runpod_bot.core.assemble_core`: RunPod clients, `JobStore` on a real Redis
(`REDIS_URL`, or an embedded server), `JobService` to submit, metrics), and the core's `Poller` with a recording
notifier (no Discord). Modes:
- `naive`: the official SDK's way, as a baseline: one task per job polling `/status` every second, no shared budget;
- `poll`: our poller;
- `webhook`: our poller with webhooks on (the bot's HTTP app receives them); polling is only a safety net;
- `sync`: our poller, the model set `sync = true`: each job is sent with /runsync and delivered from its reply when
  it finished within the wait, otherwise polled by its `sync-` id.
`--compare` runs `naive` and the chosen mode on the same scenario, each in its own process (so CPU and peak memory
are each mode's own), and adds the ratios ours/naive.

Measured per mode: `lag_*` is, per job, when the recording notifier received the finished job minus when the
emulator finished it (`/_emulator/counters` `terminal[id].epoch`; one host, one clock). `status_calls_per_job` and
`rate_limited` (429s of any operation) are the emulator's counts, and so is `requests_per_job` (every request to the
job API: /run, /runsync, /status, /cancel). `max_status_rps` is the most `/status` requests
sent in any sliding second (every attempt, retries included, timed as each request starts; the emulator is on
loopback, so it sees them within a millisecond). `cpu_s` and `peak_rss_mb` are this process's (the bot side).
`redis_cmds_per_poll` is the Redis server's `INFO commandstats` calls during the run (every command of the bot:
submits, polls, webhooks, deliveries; commands run inside scripts included) divided by the poller's busy cycles
(claims that returned jobs); `redis_cmds_per_job` divides the same by the jobs, and `redis_round_trips_per_job`
counts the bot's round trips to Redis per job. That a poll cycle's round trips do not grow with its size is checked
exactly by the test suite (`tests/integration/jobs/test_poller.py`).

The last line printed is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import random
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from jobs.notifier import Delivery, JobResult
from jobs.poller import Poller
from jobs.presets import ModelCatalog, ModelConfig, ModelEntry, RequestOptions, build_model
from jobs.service import RunSettings
from jobs.webhooks import WebhookSigner
from runpod_bot.core import CoreOptions, assemble_core
from runpod_bot.web import create_app, serve
from runpod_client import NO_RETRY, RunPodClient, RunPodError
from runpod_client.outputs import FetchPolicy, OutputError, extract_images
from storage.connection import create_client
from storage.embedded import EmbeddedRedis
from storage.models import JobState, Requester, TrackedJob
from storage.store import JobStore, Limits, StoreConfig

log = logging.getLogger("benchmarks.tracking")

MODES = ("naive", "poll", "webhook", "sync")
API_KEY = "bench-key"
ENDPOINT_ID = "bench"
# The naive baseline polls like the official SDK: every second, one loop per job.
NAIVE_INTERVAL_S = 1.0
# Images are tiny: the benchmark measures tracking, not image transfer (the emulator draws each one).
IMAGE_SIDE = 64
STEPS = 30
EMULATOR_START_TIMEOUT_S = 30.0
WAIT_CHECK_S = 0.1
REPORT_EVERY_S = 10.0
RECORD_TTL_S = 600
# A bucket of the benchmark's own Redis commands that must not count as the bot's.
OWN_COMMANDS = frozenset({"info", "config|resetstat", "ping", "client|setinfo", "hello"})


@dataclass(frozen=True)
class BenchScenario:
    """What the endpoint does and how jobs arrive."""

    name: str
    jobs: int
    # Jobs arrive over this many seconds (a Poisson process, scaled to end there); 0: submitted as fast as they go.
    arrival_s: float
    workers: int
    execution_s: tuple[float, float]
    default_mode: str
    # Workers join only once every job is submitted, so every job is tracked at once.
    hold_workers: bool = False
    # Extra emulator options (e.g. a higher /run limit, so 10,000 jobs can be submitted in seconds).
    emulator_options: tuple[str, ...] = ()
    submit_concurrency: int = 32
    deadline_s: float = 240.0


SCENARIOS: dict[str, BenchScenario] = {
    "busy": BenchScenario(
        name="busy", jobs=600, arrival_s=60.0, workers=100, execution_s=(3.0, 20.0), default_mode="poll"
    ),
    "scale": BenchScenario(
        name="scale",
        jobs=10_000,
        arrival_s=0.0,
        workers=400,
        execution_s=(2.0, 6.0),
        default_mode="webhook",
        hold_workers=True,
        emulator_options=("--rate-limit", "run=1000000/10/1000"),
        submit_concurrency=64,
    ),
    # Sub-2-second jobs (sdxl-turbo, Flux Schnell on warm workers), with enough workers that they rarely queue.
    "fast": BenchScenario(
        name="fast", jobs=240, arrival_s=45.0, workers=20, execution_s=(0.3, 1.5), default_mode="sync", deadline_s=90.0
    ),
}
# The operations of the job API a mode's requests per job count.
JOB_API_OPERATIONS = ("run", "runsync", "status", "cancel")


# --- measuring -----------------------------------------------------------------------------------------------------


@dataclass
class RecordingNotifier:
    """Delivery that posts nothing: it notes when each finished job arrived, by RunPod id."""

    received_at: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, JobState] = field(default_factory=dict)
    updates: int = 0

    async def job_updated(self, job: TrackedJob) -> None:
        self.updates += 1

    async def job_finished(self, job: TrackedJob, result: JobResult) -> Delivery:
        key = job.runpod_id or job.jid
        self.received_at.setdefault(key, time.time())
        self.outcomes.setdefault(key, result.outcome)
        return Delivery()

    def record(self, runpod_id: str, outcome: JobState) -> None:
        self.received_at.setdefault(runpod_id, time.time())
        self.outcomes.setdefault(runpod_id, outcome)


@dataclass
class StatusTrace:
    """When each `/status` request started (every attempt), from the HTTP session's trace hooks."""

    started: list[float] = field(default_factory=list)

    def config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_start)
        return trace

    async def _on_start(
        self, _session: aiohttp.ClientSession, _context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if "/status/" in params.url.path:
            self.started.append(time.monotonic())

    def max_in_window(self, window_s: float) -> int:
        """The most requests that started within any sliding window of `window_s`."""
        best, first = 0, 0
        for last, moment in enumerate(self.started):
            while moment - self.started[first] >= window_s:
                first += 1
            best = max(best, last - first + 1)
        return best


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (`share` in 0..1), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


async def command_calls(redis: aioredis.Redis) -> int:
    """Commands the Redis server ran so far (scripts and the commands inside them), the benchmark's own excluded."""
    stats = await redis.info("commandstats")
    total = 0
    for name, values in stats.items():
        command = str(name).removeprefix("cmdstat_")
        if command not in OWN_COMMANDS and isinstance(values, dict):
            total += int(values.get("calls", 0))
    return total


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    # Linux reports kilobytes, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# --- the parts ------------------------------------------------------------------------------------------------------


@dataclass
class EmulatorProcess:
    """`python -m runpod_emulator` in its own process, and its control API."""

    url: str
    process: asyncio.subprocess.Process
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return self.url + "/v2"

    async def patch_scenario(self, **changes: Any) -> None:
        async with self.http.patch(f"{self.url}/_emulator/scenario", json=changes) as response:
            response.raise_for_status()

    async def counters(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/_emulator/counters") as response:
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data


@asynccontextmanager
async def emulator_process(
    scenario: BenchScenario, *, no_progress: bool, seed: int, log_file: Path
) -> AsyncIterator[EmulatorProcess]:
    low, high = scenario.execution_s
    options = [
        "--host", "127.0.0.1", "--port", "0", "--api-key", API_KEY, "--endpoint-id", ENDPOINT_ID,
        "--seed", str(seed), "--workers", "0" if scenario.hold_workers else str(scenario.workers),
        "--execution", f"{low}-{high}", "--steps", str(STEPS), "--image-size", str(IMAGE_SIDE),
        "--log-level", "WARNING", *scenario.emulator_options,
    ]  # fmt: skip
    if no_progress:
        options += ["--personality", "no-progress"]
    with log_file.open("ab") as errors:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runpod_emulator", *options,
            stdout=asyncio.subprocess.PIPE, stderr=errors, start_new_session=True,
        )  # fmt: skip
    try:
        url = await asyncio.wait_for(_emulator_url(process), EMULATOR_START_TIMEOUT_S)
        async with aiohttp.ClientSession() as http:
            yield EmulatorProcess(url, process, http)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _emulator_url(process: asyncio.subprocess.Process) -> str:
    """The emulator prints `RunPod emulator: http://HOST:PORT/v2/ENDPOINT/` first."""
    if process.stdout is None:
        raise RuntimeError("the emulator's output is not captured")
    line = (await process.stdout.readline()).decode()
    if "http://" not in line:
        raise RuntimeError(f"the emulator did not start: {line.strip() or 'no output'}")
    address = line[line.index("http://") :].split()[0]
    return address[: address.index("/v2/")]


@asynccontextmanager
async def redis_server(directory: Path) -> AsyncIterator[aioredis.Redis]:
    """`REDIS_URL` when set, otherwise a private embedded server."""
    url = os.environ.get("REDIS_URL")
    embedded: EmbeddedRedis | None = None
    if not url:
        embedded = EmbeddedRedis(data_dir=directory)
        await embedded.start()
        url = embedded.url
    client = create_client(url)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            await embedded.stop()


def bench_model(*, sync: bool = False) -> ModelConfig:
    """An SDXL-style model drawing tiny images in 30 steps; with `sync`, sent with /runsync (the default wait)."""
    size = f"{IMAGE_SIDE}x{IMAGE_SIDE}"
    entry = ModelEntry(
        name="bench",
        endpoint_id=ENDPOINT_ID,
        preset="sdxl",
        limits={"sizes": [size]},
        defaults={"size": size, "steps": STEPS},
        sync=sync,
    )
    return build_model(entry)


def arrival_times(scenario: BenchScenario, seed: int) -> list[float]:
    """When each job is submitted, in seconds from the start: a seeded Poisson process over `arrival_s`."""
    if scenario.arrival_s <= 0:
        return [0.0] * scenario.jobs
    rng = random.Random(seed)
    moments: list[float] = []
    now = 0.0
    for _ in range(scenario.jobs):
        now += rng.expovariate(1.0)
        moments.append(now)
    return [moment * scenario.arrival_s / moments[-1] for moment in moments]


# --- one mode -------------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """The parts of one mode's run, and what it measured."""

    scenario: BenchScenario
    mode: str
    emulator: EmulatorProcess
    http: aiohttp.ClientSession
    redis: aioredis.Redis
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    submitted: int = 0
    submit_failures: int = 0
    poller: Poller | None = None
    stores: list[JobStore] = field(default_factory=list)


async def run_mode(scenario: BenchScenario, mode: str, *, no_progress: bool, seed: int) -> dict[str, Any]:
    """Run the scenario in one mode and measure it."""
    trace = StatusTrace()
    with tempfile.TemporaryDirectory(prefix="rpb-bench-") as directory:
        async with AsyncExitStack() as stack:
            redis = await stack.enter_async_context(redis_server(Path(directory) / "redis"))
            emulator = await stack.enter_async_context(
                emulator_process(scenario, no_progress=no_progress, seed=seed, log_file=Path(directory) / "emu.log")
            )
            http = await stack.enter_async_context(aiohttp.ClientSession(trace_configs=[trace.config()]))
            run = Run(scenario, mode, emulator, http, redis)
            commands_before = await command_calls(redis)
            cpu_before = cpu_seconds()
            started = time.monotonic()
            if mode == "naive":
                await run_naive(run, seed)
            else:
                await run_ours(run, seed, webhooks=mode == "webhook", sync=mode == "sync")
            duration = time.monotonic() - started
            cpu = cpu_seconds() - cpu_before
            commands = await command_calls(redis) - commands_before
            counters = await emulator.counters()
    return summarize(run, counters, trace, duration=duration, cpu_s=cpu, redis_commands=commands)


async def run_naive(run: Run, seed: int) -> None:
    """The baseline: submit, then one loop per job polling every second, as the official SDK does."""
    model = bench_model()
    submitter = RunPodClient(run.http, ENDPOINT_ID, API_KEY, base_url=run.emulator.base_url)
    poller = RunPodClient(run.http, ENDPOINT_ID, API_KEY, base_url=run.emulator.base_url, retry=NO_RETRY)
    fetch = FetchPolicy(allow_loopback=True)

    async def follow(job_id: str) -> None:
        while True:
            await asyncio.sleep(NAIVE_INTERVAL_S)
            try:
                status = await poller.status(job_id)
            except RunPodError:
                continue
            if status.is_finished:
                break
        outcome = JobState(status.status.value)
        if outcome is JobState.COMPLETED:
            try:
                await extract_images(status.output, session=run.http, policy=fetch)
            except OutputError:
                outcome = JobState.FAILED
        run.notifier.record(job_id, outcome)

    async def track(index: int) -> None:
        request = model.resolve(RequestOptions(prompt=f"bench {index}", seed=index))
        try:
            job = await submitter.run(model.build_input(request))
        except RunPodError as exc:
            log.warning("submit %s failed: %s", index, exc)
            run.submit_failures += 1
            return
        run.submitted += 1
        followers.append(asyncio.create_task(follow(job.id), name=f"naive-{index}"))

    followers: list[asyncio.Task[None]] = []
    try:
        await submit_all(run, seed, track)
        await wait_for_results(run)
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)


def bench_options(prefix: str, base_url: str, signer: WebhookSigner | None) -> CoreOptions:
    """The core's options: the classes' defaults (which the default settings are), but for the emulator's address and
    key, a short record TTL, images from loopback, and no admission limits (each job has its own member, so the
    bot's per-member limits would only add a cooldown key per submit)."""
    return CoreOptions(
        store=StoreConfig(prefix=prefix, record_ttl_s=RECORD_TTL_S),
        api_key=API_KEY,
        runpod_base_url=base_url,
        run_settings=RunSettings(limits=Limits()),
        fetch_policy=FetchPolicy(allow_loopback=True),
        webhook_signer=signer,
    )


def listening_socket() -> socket.socket:
    """A loopback socket bound to a free port, so the webhook URLs can name it before the HTTP app exists."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    return listener


async def run_ours(run: Run, seed: int, *, webhooks: bool, sync: bool = False) -> None:
    """Our core as the composition root builds it: its service submits, its poller tracks (and, with webhooks, the
    bot's HTTP app receives them; with `sync`, jobs go through /runsync)."""
    model = bench_model(sync=sync)
    catalog = ModelCatalog((model,), model.name)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        signer: WebhookSigner | None = None
        listener: socket.socket | None = None
        if webhooks:
            listener = stack.enter_context(listening_socket())
            signer = WebhookSigner(secrets.token_bytes(32), f"http://127.0.0.1:{listener.getsockname()[1]}")
        core = assemble_core(run.redis, run.http, catalog, bench_options(prefix, run.emulator.base_url, signer))
        stack.push_async_callback(core.close)
        run.stores.append(core.store)
        poller = core.poller(run.notifier, rng=random.Random(seed))
        run.poller = poller
        if listener is not None:
            await stack.enter_async_context(serve(create_app(webhooks=core.webhook_receiver(poller)), sock=listener))
        # A /runsync reply holding the result is delivered by this poller, as in the bot.
        core.service.handoff.attach(poller)
        polling = core.start_polling(poller)
        try:

            async def track(index: int) -> None:
                options = RequestOptions(prompt=f"bench {index}", seed=index)
                try:
                    await core.service.submit(options, Requester(user_id=index + 1))
                except Exception as exc:
                    log.warning("submit %s failed: %s", index, exc)
                    run.submit_failures += 1
                    return
                run.submitted += 1

            await submit_all(run, seed, track)
            await wait_for_results(run)
        finally:
            await core.stop_polling(poller, polling)


async def submit_all(run: Run, seed: int, track: Callable[[int], Awaitable[None]]) -> None:
    """Submit every job at its arrival time, at most `submit_concurrency` at once; with held workers, start the
    workers once all are submitted."""
    scenario = run.scenario
    gate = asyncio.Semaphore(scenario.submit_concurrency)
    start = time.monotonic()

    async def one(index: int) -> None:
        try:
            await track(index)
        finally:
            gate.release()

    submits: list[asyncio.Task[None]] = []
    for index, moment in enumerate(arrival_times(scenario, seed)):
        delay = start + moment - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # Taken before the task exists: 10,000 submits at once are never 10,000 waiting tasks.
        await gate.acquire()
        submits.append(asyncio.create_task(one(index), name=f"submit-{index}"))
    await asyncio.gather(*submits)
    log.info("%s: %s jobs submitted in %.1f s", run.mode, run.submitted, time.monotonic() - start)
    if scenario.hold_workers:
        await run.emulator.patch_scenario(workers=scenario.workers)
        log.info("%s: %s workers started", run.mode, scenario.workers)


async def wait_for_results(run: Run) -> None:
    """Until every submitted job reached the notifier, or the scenario's deadline."""
    deadline = time.monotonic() + run.scenario.deadline_s
    next_report = time.monotonic() + REPORT_EVERY_S
    while len(run.notifier.received_at) < run.submitted and time.monotonic() < deadline:
        await asyncio.sleep(WAIT_CHECK_S)
        if time.monotonic() >= next_report:
            next_report += REPORT_EVERY_S
            log.info("%s: %s of %s jobs finished", run.mode, len(run.notifier.received_at), run.submitted)
    if len(run.notifier.received_at) < run.submitted:
        log.warning(
            "%s: deadline reached with %s jobs unfinished", run.mode, run.submitted - len(run.notifier.received_at)
        )


def summarize(
    run: Run, counters: dict[str, Any], trace: StatusTrace, *, duration: float, cpu_s: float, redis_commands: int
) -> dict[str, Any]:
    terminal: dict[str, dict[str, Any]] = counters.get("terminal", {})
    lags = [
        received - float(terminal[runpod_id]["epoch"])
        for runpod_id, received in run.notifier.received_at.items()
        if runpod_id in terminal
    ]
    jobs = run.scenario.jobs
    received = counters.get("received", {})
    status_calls = int(received.get("status", 0))
    api_requests = sum(int(received.get(operation, 0)) for operation in JOB_API_OPERATIONS)
    rate_limited = sum(int(statuses.get("429", 0)) for statuses in counters.get("requests", {}).values())
    completed = sum(1 for outcome in run.notifier.outcomes.values() if outcome is JobState.COMPLETED)
    poller = run.poller
    busy_cycles = poller.stats.busy_cycles if poller is not None else 0
    result: dict[str, Any] = {
        "jobs": jobs,
        "submitted": run.submitted,
        "completed": completed,
        "status_calls_per_job": round(status_calls / jobs, 3),
        "requests_per_job": round(api_requests / jobs, 3),
        "lag_p50_s": _rounded(percentile(lags, 0.50)),
        "lag_p95_s": _rounded(percentile(lags, 0.95)),
        "lag_p99_s": _rounded(percentile(lags, 0.99)),
        "lag_max_s": _rounded(max(lags) if lags else None),
        "max_status_rps": trace.max_in_window(1.0),
        "max_status_per_10s": trace.max_in_window(10.0),
        "rate_limited": rate_limited,
        "cpu_s": round(cpu_s, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "redis_cmds_per_poll": round(redis_commands / busy_cycles, 1) if busy_cycles else None,
        "redis_cmds_per_job": round(redis_commands / jobs, 1),
        "redis_round_trips_per_job": round(sum(store.round_trips for store in run.stores) / jobs, 1),
        "duration_s": round(duration, 1),
    }
    if poller is not None:
        stats = poller.stats
        result["jobs_per_poll"] = round(stats.claimed / busy_cycles, 1) if busy_cycles else None
        # Jobs finished from a job object in hand: a webhook's payload, or in `sync` mode a /runsync reply.
        result["webhook_jobs" if run.mode != "sync" else "jobs_from_reply"] = stats.webhook_jobs
        result["cycles"] = {"all": stats.cycles, "busy": stats.busy_cycles, "flushes": stats.write_flushes}
        result["polls_per_job"] = {
            "queued": round(stats.queued_polls / jobs, 2),
            "running": round(stats.running_polls / jobs, 2),
            "final": round(stats.final_polls / jobs, 2),
        }
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- several modes, targets, output ---------------------------------------------------------------------------------


def targets(scenario: str, no_progress: bool, results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets that apply to this run, each with the measured value and whether it is met."""
    checks: list[tuple[str, Any, float, bool]] = []
    naive = results.get("naive")

    def check(name: str, value: Any, limit: float) -> None:
        checks.append((name, value, limit, value is not None and value <= limit))

    if scenario == "busy" and "poll" in results:
        ours = results["poll"]
        check("poll: rate_limited", ours["rate_limited"], 0)
        check("poll: lag_p95_s", ours["lag_p95_s"], 1.5)
        if naive is not None:
            check(
                "poll: status_calls_per_job / naive",
                _ratio(ours, naive, "status_calls_per_job"),
                0.6 if no_progress else 0.3,
            )
    if scenario == "busy" and "webhook" in results:
        ours = results["webhook"]
        check("webhook: lag_p95_s", ours["lag_p95_s"], 0.25)
        check("webhook: status_calls_per_job", ours["status_calls_per_job"], 0.5)
    if scenario == "scale" and "webhook" in results:
        ours = results["webhook"]
        check("webhook: rate_limited", ours["rate_limited"], 0)
        check("webhook: lag_p95_s", ours["lag_p95_s"], 0.5)
        check("webhook: peak_rss_mb", ours["peak_rss_mb"], 300)
    return [{"target": name, "value": value, "limit": limit, "met": met} for name, value, limit, met in checks]


def _ratio(ours: dict[str, Any], naive: dict[str, Any], key: str) -> float | None:
    if ours.get(key) is None or not naive.get(key):
        return None
    return round(float(ours[key]) / float(naive[key]), 3)


def run_child(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """One mode in a fresh process (its own CPU time and peak memory); its last output line is its JSON."""
    command = [sys.executable, "-m", "benchmarks.tracking", "--scenario", args.scenario, "--mode", mode]
    command += ["--seed", str(args.seed)] + (["--no-progress"] if args.no_progress else [])
    if args.jobs is not None:
        command += ["--jobs", str(args.jobs)]
    if args.arrival is not None:
        command += ["--arrival", str(args.arrival)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, check=False, text=True)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark of mode {mode} failed (exit {completed.returncode})")
    report: dict[str, Any] = json.loads(lines[-1])
    result: dict[str, Any] = report["modes"][mode]
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="busy")
    parser.add_argument(
        "--mode", choices=MODES, help="default: the scenario's (busy: poll, scale: webhook, fast: sync)"
    )
    parser.add_argument("--compare", action="store_true", help="also run the naive baseline and give the ratios")
    parser.add_argument("--no-progress", action="store_true", help="workers report no step progress")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, help="override the scenario's number of jobs (quick checks)")
    parser.add_argument("--arrival", type=float, help="override the seconds over which jobs arrive")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    # The poller's per-job warnings (a 429 now and then in the naive mode) would drown the progress lines.
    logging.getLogger("jobs").setLevel(logging.ERROR)
    logging.getLogger("runpod_client").setLevel(logging.ERROR)
    scenario = SCENARIOS[args.scenario]
    if args.jobs is not None:
        scenario = replace(scenario, jobs=args.jobs)
    if args.arrival is not None:
        scenario = replace(scenario, arrival_s=args.arrival)
    mode = args.mode or scenario.default_mode
    args.mode = mode
    results: dict[str, dict[str, Any]] = {}
    if args.compare and mode != "naive":
        results["naive"] = run_child(args, "naive")
        results[mode] = run_child(args, mode)
    else:
        results[mode] = asyncio.run(run_mode(scenario, mode, no_progress=args.no_progress, seed=args.seed))
    report: dict[str, Any] = {
        "scenario": scenario.name,
        "mode": mode,
        "no_progress": args.no_progress,
        "seed": args.seed,
        "modes": results,
    }
    if "naive" in results and mode != "naive":
        report["ratios"] = {
            "status_calls_per_job": _ratio(results[mode], results["naive"], "status_calls_per_job"),
            "lag_p95_s": _ratio(results[mode], results["naive"], "lag_p95_s"),
        }
    report["targets"] = targets(scenario.name, args.no_progress, results)
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(report, separators=(", ", ": ")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
