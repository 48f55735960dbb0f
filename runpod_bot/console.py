"""What the command line shows (cli.py holds the commands): job states and tables, health rows, and the terminal's
notifier, which prints progress and saves images."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from jobs.labels import NOT_DELIVERED, STATE_LABELS, delivery_failure, state_label
from jobs.notifier import Delivery, JobResult
from storage.models import JobState, Requester, TrackedJob

if TYPE_CHECKING:
    from jobs.health import ModelHealth, Tracking
    from jobs.usage import Breakdown, Sums
    from storage.store import JobStore

log = logging.getLogger(__name__)

# Jobs submitted from the terminal belong to this user id; Discord ids are never 0.
CLI_USER_ID = 0


def _age(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def describe_state(job: TrackedJob) -> str:
    """One line a person can read: state, waiting time or progress, and why it ended."""
    state = job.final_state
    if state is JobState.QUEUED:
        return f"queued for {_age(job.submitted_at)} (waiting for a worker)"
    if state is JobState.RUNNING:
        waited = f" after {job.delay_time_ms / 1000:.1f} s in the queue" if job.delay_time_ms is not None else ""
        return "running" + waited + (f", step {job.progress}" if job.progress else "")
    if state is JobState.SUBMITTING:
        return "submitting to RunPod"
    label = state_label(job).lower()
    if (undelivered := delivery_failure(job)) is not None:
        return f"{label}: {undelivered}"
    return label + (f": {job.error}" if job.error and state is not JobState.COMPLETED else "")


@dataclass
class TerminalNotifier:
    """Prints the progress of the jobs it watches and saves their images (`imagine` polls its own job only)."""

    out_dir: Path
    watch: set[str] = field(default_factory=set)
    stream: TextIO = sys.stdout
    saved: dict[str, list[Path]] = field(default_factory=dict)
    _finished: dict[str, asyncio.Event] = field(default_factory=dict)

    def event(self, jid: str) -> asyncio.Event:
        return self._finished.setdefault(jid, asyncio.Event())

    async def job_updated(self, job: TrackedJob) -> None:
        if job.jid in self.watch:
            self._print(f"{job.jid}: {describe_state(job)}")

    async def job_finished(self, job: TrackedJob, result: JobResult) -> Delivery:
        paths: list[Path] = []
        if result.images:
            paths = await asyncio.to_thread(self._save, job, result)
        self.saved[job.jid] = paths
        if result.undelivered:
            self._print(f"{job.jid}: {NOT_DELIVERED.lower()}: {result.undelivered}")
        elif paths:
            self._print(f"{job.jid}: {STATE_LABELS[JobState.COMPLETED].lower()}; saved " + ", ".join(map(str, paths)))
            if result.capped is not None:
                cap = result.capped
                self._print(f"{job.jid}: the worker returned {cap.returned} images; the model allows {cap.allowed}")
        else:
            self._print(f"{job.jid}: {STATE_LABELS[result.outcome].lower()}: {result.reason or 'no reason given'}")
        self.event(job.jid).set()
        return Delivery()

    def _save(self, job: TrackedJob, result: JobResult) -> list[Path]:
        # Only `imagine` saves images: `status` and `jobs` need not load the model presets this module reads.
        from jobs.image_metadata import job_parameters, with_parameters

        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        # The seed that rendered each image (a batch from one seed names that one) and its A1111 `parameters`.
        images = zip(result.images, job_parameters(job, result.images), strict=True)
        for index, (image, parameters) in enumerate(images, start=1):
            path = self.out_dir / image.filename(f"{job.jid}-{index}-seed{parameters.seed}")
            path.write_bytes(with_parameters(image.data, image.media_type, parameters.infotext()))
            paths.append(path)
        return paths

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


# The operator's own terminal, not a Discord channel: the NSFW rules (`jobs.nsfw`) do not restrict it.
CLI_REQUESTER = Requester(user_id=CLI_USER_ID, age_restricted=True)


async def find_job(stores: Sequence[JobStore], job_id: str) -> tuple[JobStore, TrackedJob] | None:
    """The job and the store (namespace) that holds it, by the bot's job id or by RunPod's id for it."""
    for store in stores:
        job = await store.get(job_id)
        if job is None and (jid := await store.jid_for_runpod_id(job_id)) is not None:
            job = await store.get(jid)
        if job is not None:
            return store, job
    return None


def format_job(job: TrackedJob) -> str:
    """A multi-line description of one job."""
    request = job.request
    lines = [
        f"job        {job.jid}",
        f"state      {describe_state(job)}",
        f"model      {job.model} (endpoint {job.endpoint_id})",
        f"prompt     {request.get('prompt', '')}",
        f"size       {request.get('width')}x{request.get('height')}, {request.get('steps')} steps, "
        f"guidance {request.get('guidance')}, seed {request.get('seed')}, {request.get('count')} image(s)",
        f"runpod id  {job.runpod_id or '-'}",
        f"created    {job.created_at.isoformat(timespec='seconds')} ({_age(job.created_at)} ago)",
    ]
    if job.delay_time_ms is not None:
        lines.append(f"queued     {job.delay_time_ms / 1000:.1f} s")
    if job.execution_time_ms is not None:
        lines.append(f"executed   {job.execution_time_ms / 1000:.1f} s")
    lines.append(f"polls      {job.poll_count}")
    return "\n".join(lines)


def format_jobs_table(jobs: Sequence[TrackedJob]) -> str:
    if not jobs:
        return "no jobs"
    header = f"{'JOB':<17} {'MODEL':<12} {'STATE':<14} {'USER':<20} {'AGE':>5}  PROMPT"
    rows = [header]
    for job in jobs:
        prompt = str(job.request.get("prompt", "")).replace("\n", " ")
        rows.append(
            f"{job.jid:<17} {job.model[:12]:<12} {job.final_state.value:<14} {job.user_id!s:<20} "
            f"{_age(job.created_at):>5}  {prompt[:50]}"
        )
    return "\n".join(rows)


def format_health_table(rows: Sequence[ModelHealth]) -> str:
    header = (
        f"{'MODEL':<12} {'ENDPOINT':<18} {'IDLE':>4} {'RUN':>4} {'INIT':>4} {'READY':>5} {'THROT':>5} {'UNHLT':>5}"
        f" {'QUEUE':>5} {'PROG':>4} {'DONE':>6} {'FAIL':>5}"
    )
    lines = [header]
    for row in rows:
        if row.health is None:
            lines.append(f"{row.model[:12]:<12} {row.endpoint_id[:18]:<18} {row.error or row.unknown}")
            continue
        workers, jobs = row.health.workers, row.health.jobs
        lines.append(
            f"{row.model[:12]:<12} {row.endpoint_id[:18]:<18} {workers.idle:>4} {workers.running:>4}"
            f" {workers.initializing:>4} {workers.ready:>5} {workers.throttled:>5} {workers.unhealthy:>5}"
            f" {jobs.in_queue:>5} {jobs.in_progress:>4} {jobs.completed:>6} {jobs.failed:>5}"
        )
    return "\n".join(lines)


def format_tracking(prefix: str, tracked: Tracking) -> str:
    """The tracker's own line for one key prefix: its jobs per state and how late the most overdue one is."""
    if not tracked.redis_ok:
        return f"tracker {prefix}: Redis did not answer"
    live = ", ".join(f"{name.split(':', 1)[1].lower()} {value}" for name, value in sorted(tracked.states.items()))
    return f"tracker {prefix}: {live or 'no jobs'}; due lag {tracked.due_lag_ms / 1000:.1f} s"


USAGE_COLUMNS = ("MONTH", "SCOPE", "ID", "JOBS", "GPU_S", "QUEUE_S", "COST")
MICROS_PER_UNIT = 1_000_000


def usage_cost(costs: Mapping[str, int]) -> str:
    """Money for a script: every currency with its millionths ("0.002100 USD + 0.150000 EUR"), or "-"."""
    return " + ".join(f"{micros / MICROS_PER_UNIT:.6f} {currency}" for currency, micros in sorted(costs.items())) or "-"


def usage_row(month: str, scope: str, ident: str, sums: Sums) -> str:
    return "\t".join(
        [
            month,
            scope,
            ident,
            str(sums.jobs),
            f"{sums.gpu_ms / 1000:.3f}",
            f"{sums.queue_ms / 1000:.3f}",
            usage_cost(sums.costs),
        ]
    )


def usage_rows(month: str, scope: str, ident: str, usage: Breakdown) -> list[str]:
    """A sum and, under it, each model's share (`model` rows; their ID is the model's name)."""
    rows = [usage_row(month, scope, ident, usage.total)]
    rows += [usage_row(month, "model", name, sums) for name, sums in usage.models.items()]
    return rows


def format_usage_table(rows: Sequence[str]) -> str:
    """Tab-separated columns under a header (`column -t -s $'\\t'` lines them up further)."""
    return "\n".join(["\t".join(USAGE_COLUMNS), *rows])
