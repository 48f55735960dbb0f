"""How the bot fares on Discord's side: a burst of `/imagine`, and a busy channel, under Discord's rate limits.

    python -m benchmarks.discord --scenario {burst,busy-channel} [--quick] [--seed N] [--jobs N] [--members N] ...

Everything runs as it does in production, each part its own process: the real bot (`runpod-bot run`, launched as the
chaos suite launches it), the fake Discord (`python -m tests.fakes.discord`, Discord's rate limits on unless
`--no-rate-limits`), the RunPod emulator (`python -m runpod_emulator`) and Redis (`REDIS_URL`, or an embedded
server). This process only plays the members (it invokes `/imagine` through the fake's control API) and reads back
what Discord, Redis and RunPod show.

- `burst`: 500 `/imagine` from 100 members within 10 s across 5 channels (each member 5 jobs; the bot's limits are
  set so that a member may have 5 jobs at once, with no cooldown). Measured: the acknowledgement latency (an
  interaction's `created_at` to its first response's `at`, both the fake's clock) p50/p95/p99/max; how many missed
  Discord's 3 s deadline (no first response at all, the fake's 10062 answers to late callbacks counted apart);
  which submissions the bot accepted (a job record exists) or refused (the member's answer says why: quota, cooldown,
  busy), and that every accepted job got exactly one card and one result message (counted by job id); how long
  members waited for their final answer (the "thinking…" message edited to "Submitted" or a refusal) and accepted
  jobs for their card.
- `busy-channel`: 40 jobs in one channel, all running at once at RunPod (the emulator has no worker until every job
  is queued, then 40), each 10-60 s with step progress. Measured: result lag (RunPod's finish, the emulator's
  terminal time, to the result message's `created_at`), split into the poll part (finish to the bot recording the
  outcome, the record's `finished_at`) and the delivery part (that to the result being visible); the 429s the bot
  got (`rate_limit_stats()`); card edits per job (each card's `history`); and the worst card staleness (below).

Card staleness: RunPod's state of a job moves through queued, running, step 1..N-1 of N (the emulator's progress
is steady: step k at start + k/N of the run), finished. A card version shows one of these (its title: "Queued",
"Generating", "Generating — step k/N"). At a moment t while the job is live at RunPod, the card is stale by
t - (when RunPod first reached a state newer than the one the card shows), or 0 when RunPod has not. A card's
staleness is the most of that over the job's life at RunPod (from its card's posting to its finish); the figure is
the worst card's. The job's start is its finish minus RunPod's `executionTime`, which also holds the worker's last
moments after the final step (drawing and encoding a 64 px image: milliseconds), so staleness is under-estimated by
at most that.

The last line printed is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from benchmarks.tracking import percentile
from jobs.labels import STATE_LABELS
from storage.connection import create_client
from storage.keys import Keys
from storage.models import JobState, TrackedJob
from tests.chaos.audit import SUBMITTED_PREFIXES, answer_text, footer_job, is_answered, is_wait_note
from tests.chaos.processes import BotLauncher, ChaosRedis, EmulatorControl, EmulatorProcess
from tests.chaos.run import Cluster
from tests.fakes.discord import FakeDiscordControl, FakeDiscordProcess
from tests.fakes.discord.views import InteractionView, MessageView, RequestView, VersionView

log = logging.getLogger("benchmarks.discord")

API_KEY = "rpa_bench_discord_key_0123456789abcdef"
ENDPOINT_ID = "bench-discord"
MODEL = "bench"
# Images are tiny: the benchmark measures Discord's side, not image transfer.
IMAGE_SIDE = 64
STEPS = 30
# Every submission asks for its own seed, so each RunPod job can be traced to its submit.
SEED_BASE = 500_000
# Discord's deadline for an interaction's first response.
ACK_DEADLINE_S = 3.0
UNKNOWN_INTERACTION = 10062
CALLBACK_PATH = re.compile(r"^/interactions/\d+/[^/]+/callback$")
STEP_TITLE = re.compile(r"step (?P<step>\d+)/(?P<steps>\d+)")
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=120)
SETTLE_CHECK_S = 1.0
REPORT_EVERY_S = 10.0
# How many emulator /status reads (a job's executionTime) at once when collecting.
READ_CONCURRENCY = 8
# Problems listed in full in the JSON, at most (their count is always given).
MAX_PROBLEMS = 20
# Targets of the issue.
ACK_P99_TARGET_S = 0.5
# With nothing ahead of it, a result's upload and the card's removal take a fraction of a second here; a result held
# behind a channel's progress edits waits for the edit bucket, seconds.
DELIVERY_P95_TARGET_S = 1.0


@dataclass(frozen=True)
class Scenario:
    """What the members do and how RunPod behaves."""

    name: str
    jobs: int
    members: int
    channels: int
    # Submissions are spread over this many seconds (uniformly at random, seeded).
    window_s: float
    execution_s: tuple[float, float]
    workers: int
    # RunPod has no worker until every submission was answered, then `workers`: every job runs at once.
    hold_workers: bool
    # The bound on waiting for everything to be delivered once the last submission was answered.
    deadline_s: float
    # The bot's per-member limits (USER_ACTIVE_JOBS, USER_COOLDOWN_S).
    member_active_jobs: int = 5
    member_cooldown_s: float = 0.0


SCENARIOS: dict[str, Scenario] = {
    "burst": Scenario(
        name="burst",
        jobs=500,
        members=100,
        channels=5,
        window_s=10.0,
        execution_s=(3.0, 10.0),
        workers=100,
        hold_workers=False,
        deadline_s=900.0,
    ),
    "busy-channel": Scenario(
        name="busy-channel",
        jobs=40,
        members=10,
        channels=1,
        window_s=5.0,
        execution_s=(10.0, 60.0),
        workers=40,
        hold_workers=True,
        deadline_s=600.0,
    ),
}
# `--quick`: the same scenarios in small, for a smoke test of the benchmark (each well under 20 s).
QUICK: dict[str, dict[str, Any]] = {
    "burst": {"jobs": 10, "members": 5, "channels": 2, "window_s": 1.0, "execution_s": (0.5, 1.5), "workers": 10,
              "deadline_s": 60.0},
    "busy-channel": {"jobs": 4, "members": 4, "window_s": 0.5, "execution_s": (1.0, 3.0), "workers": 4,
                     "deadline_s": 60.0},
}  # fmt: skip


# --- the world -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    """One `/imagine` a member sent."""

    index: int
    interaction_id: int
    user_id: int
    channel_id: int
    seed: int


@dataclass
class World:
    guild_id: int = 0
    channel_ids: list[int] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)
    submits: list[Submit] = field(default_factory=list)
    invoke_failures: int = 0


def models_file(path: Path) -> Path:
    """One SDXL-style model on the emulator's endpoint, drawing 64 px images in 30 steps."""
    size = f"{IMAGE_SIDE}x{IMAGE_SIDE}"
    path.write_text(
        "[[models]]\n"
        f'name = "{MODEL}"\nendpoint_id = "{ENDPOINT_ID}"\npreset = "sdxl"\ndefault = true\n'
        f'defaults = {{ size = "{size}", steps = {STEPS} }}\nlimits = {{ sizes = ["{size}"] }}\n'
    )
    return path


def emulator_scenario(scenario: Scenario, seed: int) -> dict[str, Any]:
    low, high = scenario.execution_s
    return {
        "seed": seed,
        "workers": 0 if scenario.hold_workers else scenario.workers,
        "execution_s": [low, high],
        "steps": STEPS,
        "image_size": IMAGE_SIDE,
        # Workers stay warm for the whole run: a cold start is paid once per worker.
        "idle_timeout_s": 600,
    }


def bot_env(
    scenario: Scenario, fake: Mapping[str, Any], emulator: EmulatorProcess, redis: ChaosRedis, work: Path
) -> dict[str, str]:
    """The bot's settings: its defaults (card edits, polling, submit slots), but for where the services are and the
    per-member limits: a member may have `member_active_jobs` jobs at once, and there is no per-server cap."""
    return {
        "DISCORD_TOKEN": str(fake["bot_token"]),
        "DISCORD_API_BASE_URL": str(fake["api_base_url"]),
        "DISCORD_GATEWAY_URL": str(fake["gateway_url"]),
        "RUNPOD_API_KEY": API_KEY,
        "RUNPOD_ENDPOINT_ID": ENDPOINT_ID,
        "RUNPOD_BASE_URL": emulator.base_url,
        "REDIS_URL": redis.url,
        "REDIS_PREFIX": redis.prefix,
        "DATA_DIR": str(work / "data"),
        "MODELS_FILE": str(models_file(work / "models.toml")),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "HTTP_PORT": "0",
        "ALLOW_PRIVATE_IMAGE_URLS": "true",
        "USER_ACTIVE_JOBS": str(scenario.member_active_jobs),
        "USER_COOLDOWN_S": f"{scenario.member_cooldown_s:g}",
        "GUILD_ACTIVE_JOBS": "0",
    }


async def build_world(fake: FakeDiscordControl, scenario: Scenario) -> World:
    world = World()
    guild = await fake.create_guild("Bench Club")
    world.guild_id = guild["id"]
    for index in range(scenario.channels):
        world.channel_ids.append((await fake.create_channel(guild["id"], f"art-{index}"))["id"])
    for index in range(scenario.members):
        world.member_ids.append((await fake.create_member(guild["id"], f"member{index:03d}"))["user_id"])
    return world


def schedule(scenario: Scenario, seed: int) -> list[tuple[float, int, int]]:
    """(moment, member index, channel index) of each submission: uniformly spread over the window, the members in
    turn (so each sends jobs / members of them), each submission in a channel drawn at random."""
    rng = random.Random(seed)
    moments = sorted(rng.uniform(0, scenario.window_s) for _ in range(scenario.jobs))
    members, channels = scenario.members, scenario.channels
    return [(moment, index % members, rng.randrange(channels)) for index, moment in enumerate(moments)]


async def submit_all(fake: FakeDiscordControl, world: World, scenario: Scenario, seed: int) -> float:
    """Send every `/imagine` at its moment, each on its own (a slow answer never delays the next); returns how long
    sending them took."""
    started = time.monotonic()

    async def one(index: int, member: int, channel: int) -> None:
        options = {"prompt": f"bench #{index:04d} a lighthouse at dusk", "seed": SEED_BASE + index}
        try:
            view = await fake.invoke_command(world.channel_ids[channel], world.member_ids[member], "imagine", options)
        except Exception as exc:
            log.warning("submission %s could not be sent: %s", index, exc)
            world.invoke_failures += 1
            return
        world.submits.append(
            Submit(index, view["id"], world.member_ids[member], world.channel_ids[channel], SEED_BASE + index)
        )

    tasks: list[asyncio.Task[None]] = []
    for index, (moment, member, channel) in enumerate(schedule(scenario, seed)):
        delay = started + moment - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, member, channel), name=f"imagine-{index}"))
    await asyncio.gather(*tasks)
    world.submits.sort(key=lambda submit: submit.index)
    return time.monotonic() - started


# --- waiting -------------------------------------------------------------------------------------------------------


async def unanswered(fake: FakeDiscordControl, submits: Sequence[Submit]) -> int:
    """Submissions with no final answer yet."""
    ids = {submit.interaction_id for submit in submits}
    return sum(1 for view in await fake.interactions() if view["id"] in ids and not is_answered(view))


def runpod_busy(counters: Mapping[str, Any]) -> int:
    jobs = counters.get("jobs", {})
    return int(jobs.get("IN_QUEUE", 0)) + int(jobs.get("IN_PROGRESS", 0))


async def wait_answered(fake: FakeDiscordControl, submits: Sequence[Submit], within: float) -> bool:
    """Until every submission has its final answer, at most `within` seconds."""
    deadline = time.monotonic() + within
    next_report = time.monotonic() + REPORT_EVERY_S
    while (left := await unanswered(fake, submits)) and time.monotonic() < deadline:
        if time.monotonic() >= next_report:
            next_report += REPORT_EVERY_S
            log.info("%s of %s submissions still unanswered", left, len(submits))
        await asyncio.sleep(SETTLE_CHECK_S)
    return left == 0


async def settle(
    fake: FakeDiscordControl,
    control: EmulatorControl,
    redis: aioredis.Redis,
    prefix: str,
    submits: Sequence[Submit],
    within: float,
) -> bool:
    """Until nothing is left to do (no job scheduled in Redis, RunPod idle, every submission answered), at most
    `within` seconds."""
    deadline = time.monotonic() + within
    next_report = time.monotonic() + REPORT_EVERY_S
    due_key = Keys(prefix).due(ENDPOINT_ID)
    while time.monotonic() < deadline:
        due = await redis.zcard(due_key)
        busy = runpod_busy(await control.counters())
        # The interactions are read only once the rest is done: it is the largest read.
        if due == 0 and busy == 0 and await unanswered(fake, submits) == 0:
            return True
        if time.monotonic() >= next_report:
            next_report += REPORT_EVERY_S
            log.info("%s jobs still scheduled, %s at RunPod", due, busy)
        await asyncio.sleep(SETTLE_CHECK_S)
    log.error("the run did not settle within %.0f s", within)
    return False


# --- reading back --------------------------------------------------------------------------------------------------


def epoch(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


@dataclass(frozen=True)
class RunPodTimeline:
    """When RunPod's state of a job moved on: started, each step of `steps`, finished (epoch seconds)."""

    started: float
    finished: float
    steps: int

    def reached(self, rank: int) -> float:
        """When RunPod first showed state `rank` (see `card_rank`)."""
        if rank <= 0:
            return float("-inf")
        if rank > self.steps:
            return self.finished
        # Rank 1 is running before step 1; rank 1 + k is step k, at k/steps of the run.
        return self.started + (self.finished - self.started) * (rank - 1) / self.steps


def card_rank(version: VersionView) -> int | None:
    """Which of RunPod's states a card version shows: 0 submitting or queued, 1 running, 1 + k at step k; None for a
    final state (the card is no longer live)."""
    title = str(version["embeds"][0].get("title") or "") if version["embeds"] else ""
    if title in (STATE_LABELS[JobState.SUBMITTING], STATE_LABELS[JobState.QUEUED]):
        return 0
    step = STEP_TITLE.search(title)
    if step is not None:
        return 1 + int(step["step"])
    if title.startswith(STATE_LABELS[JobState.RUNNING]):
        return 1
    return None


def card_staleness(card: MessageView, timeline: RunPodTimeline) -> float:
    """The longest the card lagged RunPod while the job was live there (the module docstring defines it)."""
    versions = card["history"]
    worst = 0.0
    for index, version in enumerate(versions):
        rank = card_rank(version)
        if rank is None:
            break
        shown_until = epoch(versions[index + 1]["at"]) if index + 1 < len(versions) else timeline.finished
        until = min(shown_until, timeline.finished)
        worst = max(worst, until - timeline.reached(rank + 1))
    return worst


async def records(redis: aioredis.Redis, prefix: str) -> list[TrackedJob]:
    found = []
    async for key in redis.scan_iter(match=Keys(prefix).job("*"), count=500):
        raw = await redis.hgetall(key)
        if raw:
            found.append(TrackedJob.from_hash(raw))
    return found


async def execution_times(control: EmulatorControl, job_ids: Sequence[str]) -> dict[str, float]:
    """RunPod's `executionTime` of each job, in seconds."""
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(job_id: str) -> tuple[str, float | None]:
        async with gate:
            value = (await control.job(job_id)).get("executionTime")
        return job_id, float(value) / 1000 if isinstance(value, int | float) else None

    pairs = await asyncio.gather(*(read(job_id) for job_id in job_ids))
    return {job_id: value for job_id, value in pairs if value is not None}


@dataclass
class Collected:
    """What Discord, Redis and RunPod show at the end."""

    submits: list[Submit]
    interactions: dict[int, InteractionView]
    messages: list[MessageView]
    records: list[TrackedJob]
    counters: dict[str, Any]
    executions: dict[str, float]
    errors: list[RequestView]
    rate_limits: dict[str, Any] | None


def seconds(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of `values`, rounded to milliseconds."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "p50": rounded(percentile(values, 0.50)),
        "p95": rounded(percentile(values, 0.95)),
        "p99": rounded(percentile(values, 0.99)),
        "max": rounded(max(values) if values else None),
    }


def acknowledgements(data: Collected) -> dict[str, Any]:
    """First-response latency of every submission, and the deadlines missed."""
    latencies: list[float] = []
    missed = 0
    for submit in data.submits:
        view = data.interactions.get(submit.interaction_id)
        response = view["response"] if view is not None else None
        if view is None or response is None:
            missed += 1
            continue
        latency = epoch(response["at"]) - epoch(view["created_at"])
        latencies.append(latency)
        missed += latency > ACK_DEADLINE_S
    late_callbacks = sum(
        1 for request in data.errors if request["code"] == UNKNOWN_INTERACTION and CALLBACK_PATH.match(request["path"])
    )
    return {"ack_s": seconds(latencies), "missed_deadline": missed, "late_callbacks_10062": late_callbacks}


@dataclass
class Jobs:
    """Each submission's fate, by job id."""

    accepted: dict[int, TrackedJob] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    cards: dict[str, list[MessageView]] = field(default_factory=lambda: defaultdict(list))
    results: dict[str, list[MessageView]] = field(default_factory=lambda: defaultdict(list))
    problems: list[str] = field(default_factory=list)


def sort_jobs(data: Collected) -> Jobs:
    """Accepted (the bot recorded a job), refused (the member was told why) or unanswered, and the cards and result
    messages of each job id; a problem for every accepted job without exactly one card and, when it completed, one
    result."""
    jobs = Jobs()
    for message in data.messages:
        jid = footer_job(message)
        if jid is None:
            continue
        if message["attachments"]:
            if not message["deleted"]:
                jobs.results[jid].append(message)
        else:
            # A card is deleted once its result takes its place: it still counts as the job's card.
            jobs.cards[jid].append(message)
    by_request = {record.request_id: record for record in data.records if record.request_id}
    for submit in data.submits:
        record = by_request.get(str(submit.interaction_id))
        view = data.interactions.get(submit.interaction_id)
        if record is not None:
            jobs.accepted[submit.index] = record
            cards, results = len(jobs.cards[record.jid]), len(jobs.results[record.jid])
            wanted = 1 if record.final_state is JobState.COMPLETED else 0
            if cards != 1 or results != wanted:
                jobs.problems.append(
                    f"#{submit.index} job {record.jid} ({record.final_state.value}): {cards} card(s), "
                    f"{results} result(s)"
                )
            continue
        answer = answer_text(view) if view is not None else ""
        if not answer:
            jobs.unanswered += 1
        elif answer.startswith(SUBMITTED_PREFIXES):
            jobs.problems.append(f"#{submit.index}: answered {answer[:60]!r} but no job was recorded")
        else:
            # The refusal's wording without its numbers, so equal refusals add up.
            jobs.refused[re.sub(r"\d+(\.\d+)?", "N", answer.splitlines()[0])[:100]] += 1
    return jobs


def answer_moment(view: InteractionView) -> float | None:
    """When the member's final answer appeared: the first version of the original response with text (the bot
    edits its "thinking…" message), or the first followup."""
    original = view["original_message"]
    if original is not None:
        for version in original["history"]:
            if version["content"] and not is_wait_note(version["content"]):
                return epoch(version["at"])
    if view["followups"]:
        return epoch(view["followups"][0]["created_at"])
    return None


def answers(data: Collected, jobs: Jobs) -> dict[str, Any]:
    """How long members waited for their final answer (accepted or refused), and accepted jobs for their card."""
    answer: list[float] = []
    card: list[float] = []
    for submit in data.submits:
        view = data.interactions.get(submit.interaction_id)
        if view is None:
            continue
        created = epoch(view["created_at"])
        moment = answer_moment(view)
        if moment is not None:
            answer.append(moment - created)
        record = jobs.accepted.get(submit.index)
        cards = jobs.cards.get(record.jid, []) if record is not None else []
        if cards:
            card.append(epoch(cards[0]["created_at"]) - created)
    return {"answer_s": seconds(answer), "card_posted_s": seconds(card)}


def timeline_of(record: TrackedJob, data: Collected) -> RunPodTimeline | None:
    terminal = data.counters.get("terminal", {}).get(record.runpod_id or "")
    execution = data.executions.get(record.runpod_id or "")
    if terminal is None or execution is None:
        return None
    finished = float(terminal["epoch"])
    steps = int(record.request.get("steps") or STEPS)
    return RunPodTimeline(started=finished - execution, finished=finished, steps=steps)


def deliveries(data: Collected, jobs: Jobs) -> dict[str, Any]:
    """Result lag and its parts, card edits and staleness, over the accepted jobs that completed."""
    lags: list[float] = []
    polls: list[float] = []
    delivery: list[float] = []
    edits: list[int] = []
    stale: list[float] = []
    edits_ahead: list[int] = []
    # Every card edit (a version after the first) in each channel, by when it landed.
    edit_moments: dict[int, list[float]] = defaultdict(list)
    for cards in jobs.cards.values():
        for card in cards:
            edit_moments[card["channel_id"]] += [epoch(version["at"]) for version in card["history"][1:]]
    for record in jobs.accepted.values():
        cards = jobs.cards.get(record.jid, [])
        if cards:
            edits.append(len(cards[0]["history"]) - 1)
        timeline = timeline_of(record, data)
        if timeline is not None and cards:
            stale.append(card_staleness(cards[0], timeline))
        results = jobs.results.get(record.jid, [])
        if timeline is None or not results:
            continue
        visible = epoch(results[0]["created_at"])
        lags.append(visible - timeline.finished)
        if record.finished_at is not None:
            recorded = record.finished_at.timestamp()
            polls.append(recorded - timeline.finished)
            delivery.append(visible - recorded)
            edits_ahead.append(
                sum(1 for moment in edit_moments[results[0]["channel_id"]] if recorded < moment < visible)
            )
    return {
        "result_lag_s": seconds(lags),
        "poll_part_s": seconds(polls),
        "delivery_part_s": seconds(delivery),
        "edits_landed_during_delivery": {
            "mean": round(sum(edits_ahead) / len(edits_ahead), 2) if edits_ahead else None,
            "max": max(edits_ahead) if edits_ahead else None,
        },
        "card_edits_per_job": {
            "mean": round(sum(edits) / len(edits), 2) if edits else None,
            "max": max(edits) if edits else None,
            "total": sum(edits),
        },
        "card_staleness_s": seconds(stale),
    }


def summarize(data: Collected, *, rate_limits: bool) -> dict[str, Any]:
    jobs = sort_jobs(data)
    completed = sum(1 for record in jobs.accepted.values() if record.final_state is JobState.COMPLETED)
    result: dict[str, Any] = {
        "submitted": len(data.submits),
        "accepted": len(jobs.accepted),
        "completed": completed,
        "refused": sum(jobs.refused.values()),
        "refusals": dict(jobs.refused.most_common()),
        "unanswered": jobs.unanswered,
        "exactly_once_problems": len(jobs.problems),
        "problems": jobs.problems[:MAX_PROBLEMS],
        **acknowledgements(data),
        **answers(data, jobs),
        **deliveries(data, jobs),
        "discord_errors": dict(Counter(f"{error['status']} {error['code'] or ''}".strip() for error in data.errors)),
    }
    if rate_limits and data.rate_limits is not None:
        result["rate_limited"] = data.rate_limits.get("limited")
        result["rate_limit_stats"] = data.rate_limits
    return result


def targets(scenario: str, result: Mapping[str, Any], *, rate_limits: bool) -> list[dict[str, Any]]:
    """The issue's targets for the scenario, each with the measured value and whether it is met."""
    checks: list[tuple[str, Any, float]] = []
    if scenario == "burst":
        checks += [
            ("ack_p99_s", result["ack_s"]["p99"], ACK_P99_TARGET_S),
            ("missed_deadline", result["missed_deadline"], 0),
            ("exactly_once_problems", result["exactly_once_problems"], 0),
        ]
    else:
        if rate_limits:
            checks.append(("rate_limited", result.get("rate_limited"), 0))
        # Results never wait behind progress edits: the time from the bot having the outcome to the result being
        # visible stays what an upload takes.
        checks.append(("delivery_part_p95_s", result["delivery_part_s"]["p95"], DELIVERY_P95_TARGET_S))
    return [
        {"target": name, "value": value, "limit": limit, "met": value is not None and value <= limit}
        for name, value, limit in checks
    ]


# --- one run -------------------------------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float | None:
    """User and system CPU seconds of a running process (Linux's /proc), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    # utime and stime are the 14th and 15th fields; the split above starts at the 3rd.
    return round((int(fields[11]) + int(fields[12])) / ticks, 2)


def work_dirs(log_dir: Path | None) -> tuple[Path, Path]:
    # A short path under /tmp: the embedded Redis's unix socket path must stay under about 100 characters.
    work = Path(tempfile.mkdtemp(prefix="bench-dc-", dir="/tmp" if Path("/tmp").is_dir() else None))
    logs = log_dir or work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return work, logs


async def run_scenario(scenario: Scenario, *, seed: int, rate_limits: bool, log_dir: Path | None) -> dict[str, Any]:
    work, logs = await asyncio.to_thread(work_dirs, log_dir)
    ok = False
    try:
        result = await _run(scenario, seed=seed, rate_limits=rate_limits, work=work, logs=logs)
        ok = result["settled"]
        return result
    finally:
        if ok and log_dir is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log.warning("logs kept in %s", logs)


async def _run(scenario: Scenario, *, seed: int, rate_limits: bool, work: Path, logs: Path) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession(timeout=HTTP_TIMEOUT))
        redis = await ChaosRedis.open(work / "redis", os.environ.get("REDIS_URL") or None, _prefix())
        stack.push_async_callback(redis.close)
        fake_process = FakeDiscordProcess(log_file=logs / "fake-discord.log", rate_limits=rate_limits)
        await asyncio.to_thread(fake_process.start)
        stack.push_async_callback(asyncio.to_thread, fake_process.stop)
        fake = FakeDiscordControl(fake_process.control_url, session=http)
        emulator = EmulatorProcess(
            scenario=emulator_scenario(scenario, seed),
            work_dir=work,
            log_path=logs / "emulator.log",
            api_key=API_KEY,
            endpoint_id=ENDPOINT_ID,
        )
        await emulator.start()
        stack.push_async_callback(emulator.stop)
        control = EmulatorControl(emulator, http)
        world = await build_world(fake, scenario)
        env = bot_env(scenario, dict(await fake.info()), emulator, redis, work)
        cluster = Cluster(BotLauncher(env, logs, work), fake)
        stack.push_async_callback(cluster.shutdown)
        bot = await cluster.start("all")
        store = create_client(redis.url)
        stack.push_async_callback(store.aclose)
        log.info(
            "%s: %s submissions from %s members in %s channel(s) over %.0f s",
            scenario.name, scenario.jobs, scenario.members, scenario.channels, scenario.window_s,
        )  # fmt: skip
        began = time.monotonic()
        sending = await submit_all(fake, world, scenario, seed)
        log.info("all %s submissions sent in %.1f s", len(world.submits), sending)
        answered_all = await wait_answered(fake, world.submits, scenario.deadline_s)
        answered_after = time.monotonic() - began
        log.info("%s answers %.1f s after the start", "all" if answered_all else "missing", answered_after)
        if scenario.hold_workers:
            await control.patch_scenario(workers=scenario.workers)
            log.info("%s workers started", scenario.workers)
        settled = await settle(fake, control, store, redis.prefix, world.submits, scenario.deadline_s)
        duration = time.monotonic() - began
        bot_cpu = process_cpu_s(bot.pid)
        fake_cpu = process_cpu_s(fake_process.pid)
        data = await collect(fake, control, store, redis.prefix, world, rate_limits=rate_limits)
    result = summarize(data, rate_limits=rate_limits)
    result.update(
        invoke_failures=world.invoke_failures,
        sending_s=round(sending, 1),
        answered_s=round(answered_after, 1),
        duration_s=round(duration, 1),
        settled=settled,
        bot_cpu_s=bot_cpu,
        fake_discord_cpu_s=fake_cpu,
        crashes=cluster.crashes,
    )
    return result


async def collect(
    fake: FakeDiscordControl,
    control: EmulatorControl,
    redis: aioredis.Redis,
    prefix: str,
    world: World,
    *,
    rate_limits: bool,
) -> Collected:
    interactions = {view["id"]: view for view in await fake.interactions()}
    messages: list[MessageView] = []
    for channel_id in world.channel_ids:
        messages += await fake.channel_messages(channel_id, include_deleted=True)
    found = await records(redis, prefix)
    counters = await control.counters()
    executions = await execution_times(control, [record.runpod_id for record in found if record.runpod_id])
    errors = await fake.requests(errors_only=True)
    stats: dict[str, Any] | None = None
    if rate_limits:
        stats = dict(await fake.rate_limit_stats())
    return Collected(world.submits, interactions, messages, found, counters, executions, errors, stats)


def _prefix() -> str:
    # A prefix of its own, so a run against a shared REDIS_URL never touches anything else.
    return f"benchdc{random.SystemRandom().randrange(16**6):06x}"


# --- the command line ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.discord", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="burst")
    parser.add_argument("--quick", action="store_true", help="a small version of the scenario (a smoke test)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, help="submissions (burst: 500, busy-channel: 40)")
    parser.add_argument("--members", type=int, help="members sending them, in turn (burst: 100, busy-channel: 10)")
    parser.add_argument("--channels", type=int, help="channels they are sent in (burst: 5, busy-channel: 1)")
    parser.add_argument("--window", type=float, help="seconds over which they are sent (burst: 10, busy-channel: 5)")
    parser.add_argument("--execution", help="RunPod's run time per job, LOW-HIGH seconds (burst: 3-10, busy: 10-60)")
    parser.add_argument("--workers", type=int, help="RunPod workers (burst: 100, busy-channel: 40)")
    parser.add_argument("--member-active-jobs", type=int, help="the bot's USER_ACTIVE_JOBS (default 5)")
    parser.add_argument("--member-cooldown", type=float, help="the bot's USER_COOLDOWN_S (default 0)")
    parser.add_argument("--no-rate-limits", action="store_true", help="the fake Discord without Discord's rate limits")
    parser.add_argument("--keep-logs", type=Path, help="write the processes' logs here and keep them")
    return parser


def scenario_of(args: argparse.Namespace) -> Scenario:
    scenario = SCENARIOS[args.scenario]
    if args.quick:
        scenario = replace(scenario, **QUICK[args.scenario])
    changes: dict[str, Any] = {}
    for option, name in (
        ("jobs", "jobs"),
        ("members", "members"),
        ("channels", "channels"),
        ("window", "window_s"),
        ("workers", "workers"),
        ("member_active_jobs", "member_active_jobs"),
        ("member_cooldown", "member_cooldown_s"),
    ):
        value = getattr(args, option)
        if value is not None:
            changes[name] = value
    if args.execution is not None:
        low, _, high = str(args.execution).partition("-")
        changes["execution_s"] = (float(low), float(high or low))
    return replace(scenario, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    scenario = scenario_of(args)
    rate_limits = not args.no_rate_limits
    result = asyncio.run(run_scenario(scenario, seed=args.seed, rate_limits=rate_limits, log_dir=args.keep_logs))
    options = asdict(scenario)
    report: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": args.seed,
        "quick": args.quick,
        "rate_limits": rate_limits,
        "options": {name: value for name, value in options.items() if name != "name"},
        "result": result,
        "targets": targets(scenario.name, result, rate_limits=rate_limits),
    }
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(report, separators=(", ", ": ")), flush=True)
    return 0 if result["settled"] and not result["crashes"] else 1


if __name__ == "__main__":
    sys.exit(main())
