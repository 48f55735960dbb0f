"""`run_chaos`: the real bot as child processes, killed and restarted while members submit `/imagine` jobs and press
the buttons of their results.

One run:
1. starts a Redis (embedded, append-only; or `REDIS_URL`), the fake Discord and the RunPod emulator (quick, varied
   timings; with faults: 5xx, 429 with Retry-After, connection resets and slow replies on status, run and cancel);
2. builds a guild with channels and members, and starts the bot (`runpod-bot run --role ...`) with two models on
   the one emulated endpoint: `xl` draws (worker-sdxl, which starts from an image too, so results show V buttons)
   and `esrgan-2x` upscales (worker-esrgan, so U<n> runs an upscale job). The emulator picks a job's worker from a
   `[emulator:…]` token in its prompt, and an upscale's input has no text: its default worker is worker-esrgan, and
   every prompt the members send names worker-sdxl (`sdxl`, or `sdxl-bucket` for URL-shaped outputs);
3. sends `--jobs` `/imagine` submissions (one or two images each) from several members at a steady pace, cancels a
   few of them through the card's button, has the owners of a share of the results (`--press-share`) press one
   button on it soon after it appears (V<n>, U<n>, Re-roll, or Remix and its form: each press a submission of its
   own), and meanwhile follows a timeline: topology changes (one `all` process; then `gateway` + `poller`; then
   `all` + `poller`: two processes on one Redis, only one of them on the gateway), SIGKILLs, Redis restarts,
   `/run` resets, and Discord's own failures (below);
4. waits (bounded) until nothing is left to do, then audits (`tests.chaos.audit`).

The fake Discord enforces Discord's real rate limits (5 messages per 5 s per channel, the global 50 per second...:
tests/fakes/README.md), and its failures are on the timeline too:
- `reconnect` (op 7: the bot reconnects and resumes) and `invalidate` (op 9, not resumable: the bot must start a
  new session, which discord.py does after a 5 s pause), each in the middle of a burst of `/imagine` from several
  members within a second (`burst` submissions kept aside for it);
- `discord-5xx` and `discord-429`: the next message post (a card, a result, an outcome) or card edit is answered
  503, 500 or 502 (discord.py retries 500 and 502 itself and hands a 503 to the bot), or 429 (now and then global);
- `late-callback`: a member's command reaches the bot after Discord's 3 s deadline for the first answer (the
  gateway connection stalls, the fake's clock moves on, the connection drops and the bot resumes and gets it), so
  Discord refuses the bot's acknowledgement (10062) and the member never hears from it.

Kill modes, taken in this order by the kills of the timeline:
- `submit`: just after the bot acknowledged a submission (it is recording it, posting its card, calling /run);
- `card`: while Discord holds back its reply to a job card's post (the card exists, its id is not in Redis);
- `delivery`: while Discord holds back its reply to a result upload (the images are posted, the bot has not heard);
- `random`: one bot process, whatever it is doing; `host`: every bot process at once (a machine going down).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from PIL import Image
from redis.exceptions import RedisError

from storage.connection import create_client
from storage.keys import Keys
from storage.models import JobState, TrackedJob
from storage.usage import COUNTED_FIELD
from tests.chaos.audit import (
    IMAGE_PRESSES,
    ChaosReport,
    GpuUsage,
    RunPodJob,
    Submission,
    Verdict,
    answer_text,
    audit,
    drawn_from,
    footer_job,
    is_answered,
    result_messages,
)
from tests.chaos.processes import (
    BotLauncher,
    BotProcess,
    ChaosRedis,
    EmulatorControl,
    EmulatorProcess,
)
from tests.fakes.discord import ControlError, FakeDiscordControl, FakeDiscordProcess
from tests.fakes.discord.views import InteractionView, MessageView, SessionView

log = logging.getLogger("chaos")

API_KEY = "rpa_chaos_key_0123456789abcdef"
ENDPOINT_ID = "chaos-endpoint"
# Every submission asks for its own seed; the emulator's output carries it, which ties a RunPod job to its submit.
SEED_BASE = 100_000
SUBJECTS = ("a lighthouse at dusk", "a fox in the snow", "a teapot on the moon", "a city of glass", "a quiet harbour")
MESSAGE_POST = r"^/channels/\d+/messages$"
# The member's answer to a submit links the job's card: "Submitted — https://discord.com/channels/G/C/M".
CARD_LINK = re.compile(r"https://discord\.com/channels/[^/\s]+/(?P<channel>\d+)/(?P<card>\d+)")
# The bot's models (see the module docstring): worker-sdxl draws, worker-esrgan enlarges twice, on one endpoint.
DRAWING_MODEL = "xl"
UPSCALER_MODEL = "esrgan-2x"
MODELS_TOML = """[[models]]
name = "{draws}"
endpoint_id = "{endpoint}"
preset = "sdxl"
default = true

[[models]]
name = "{upscales}"
endpoint_id = "{endpoint}"
preset = "esrgan"
task = "upscale"
scale = 2
"""
# The emulator's worker for a job without a token in its text: an upscale's input (a link and a factor).
UPSCALE_PERSONALITY = "esrgan"
# The buttons pressed on results, taken in turn by the planned presses: V<n> and U<n> twice as often as Remix and
# Re-roll, every kind within the first five (the smoke test's presses).
PRESS_CYCLE = ("vary", "upscale", "vary", "remix", "reroll", "upscale")
# A member presses this long after the result appeared (seconds).
PRESS_DELAY_S = (0.1, 1.0)
# How often a press waiting for its result looks at the job's record.
PRESS_POLL_S = 0.3
# A remix changes the prompt this way (the emulator's token stays in it).
REMIX_PREFIX = "remixed: "
# Discord's interaction callback type for "show a form".
MODAL_RESPONSE = 9
PROCESS_READY_TIMEOUT_S = 40.0
EVENT_TIMEOUT_S = 15.0
# How long the reply to a post is held so that a process can be killed after Discord created the message. The
# kill comes within milliseconds; meanwhile discord.py holds that channel's next posts from that process too.
HELD_REPLY_S = 1.0
# A submission answered later than this after it was sent is impossible (the bot's own timeouts are shorter).
SUBMIT_IN_FLIGHT_S = 45.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=60)
# The topologies the run goes through; exactly one process of each holds the gateway.
TOPOLOGIES: tuple[tuple[str, ...], ...] = (("all",), ("gateway", "poller"), ("all", "poller"))
# Starting with a poller apart from the gateway: a delivery kill there cuts no submit short (the smoke test).
SPLIT_TOPOLOGIES: tuple[tuple[str, ...], ...] = (("gateway", "poller"), ("all", "poller"))
# The kills of a run take these modes in turn (five kills: one of each).
KILL_MODES = ("submit", "delivery", "card", "random", "host")
# A card edit (the bot edits nothing else in a channel).
MESSAGE_EDIT = r"^/channels/\d+/messages/\d+$"
# Discord's first answer to an interaction; an answer after the 3 s deadline is refused with 10062.
CALLBACK = re.compile(r"^/interactions/(?P<id>\d+)/[^/]+/callback$")
UNKNOWN_INTERACTION = 10062
# The 5xx answers injected in turn, on the next message post or card edit: discord.py hands a 503 to the bot and
# retries a 500 or a 502 itself (after a second).
DISCORD_5XX: tuple[tuple[str, int], ...] = (("POST", 503), ("PATCH", 503), ("POST", 500), ("PATCH", 502))
# The 429s injected in turn (True: Discord's global limit, which holds every request of the client).
DISCORD_429: tuple[tuple[str, bool], ...] = (("POST", False), ("PATCH", False), ("POST", True), ("PATCH", False))
MESSAGE_ROUTES = {"POST": MESSAGE_POST, "PATCH": MESSAGE_EDIT}
# What an injected 429 asks the client to wait (seconds).
INJECTED_RETRY_AFTER_S = 1.0
# A late command reaches the bot this long after Discord created it, by Discord's clock (the deadline is 3 s).
LATE_BY_S = 3.5
# Discord's deadline for the first answer to an interaction.
FIRST_ANSWER = timedelta(seconds=3)
# A burst's submissions are sent within this many seconds, the fault in the middle.
BURST_S = 1.0
# How many times a member whose command found no bot session at all tries again.
DELIVER_ATTEMPTS = 10
# The timeline's events that take submissions kept aside: a burst for the gateway faults, one for a late callback.
GATEWAY_FAULTS = ("reconnect", "invalidate")


@dataclass(frozen=True)
class ChaosOptions:
    """What one run does; the defaults are `make chaos`."""

    jobs: int = 300
    kills: int = 5
    redis_restarts: int = 2
    run_resets: int = 2
    seed: int | None = None
    faults: bool = True
    members: int = 6
    # Members send in every channel in turn. Discord lets a bot post 5 messages per 5 s in a channel, and a job
    # takes two (its card, its result) besides its card's edits: with fewer channels than about 4 x `submit_rate`,
    # the run would ask for more than Discord allows and measure only the queue in front of its limits.
    channels: int = 16
    submit_rate: float = 4.0
    workers: int = 8
    cancel_share: float = 0.04
    url_output_share: float = 0.25
    # The share of `/imagine` submissions whose owner presses one button on the result once it appears (a job that
    # ends without a result is not pressed). A job to be pressed asks for two images, so V2 and U2 get pressed too.
    press_share: float = 0.15
    # The share of the other `/imagine` submissions that ask for two images.
    two_image_share: float = 0.25
    # The bound on waiting for the system to settle once the last job was submitted. A job whose submit was cut
    # short becomes "outcome unknown" only when its 120 s submit lease ends, so this must be longer than that.
    settle_timeout_s: float = 170.0
    topologies: tuple[tuple[str, ...], ...] = TOPOLOGIES
    # The kills take these modes in turn; with `early_kills` they all fall in the first topology.
    kill_modes: tuple[str, ...] = KILL_MODES
    early_kills: bool = False
    # The bot's POLL_LEASE_MS and DELIVERY_LEASE_MS (None: its defaults, 30 s and 60 s). Short leases make a crashed
    # process's jobs come back within seconds (and stress the fencing: a slow reply can outlast its lease).
    poll_lease_ms: int | None = None
    delivery_lease_ms: int | None = None
    log_dir: Path | None = None
    # The fake Discord enforces Discord's real rate limits (per-channel message buckets, the global 50/s).
    discord_rate_limits: bool = True
    # Discord's failures on the timeline (see the module docstring): op 7, op 9 (a new session), 5xx and 429 on
    # message posts and card edits, commands that reach the bot after the 3 s deadline.
    reconnects: int = 2
    invalid_sessions: int = 2
    discord_5xx: int = 4
    discord_429: int = 4
    late_callbacks: int = 2
    # The `/imagine` submissions sent within a second around each op 7 and op 9, kept aside from the steady pace.
    burst: int = 6

    @property
    def window_s(self) -> float:
        """How long the submissions take."""
        return self.jobs / self.submit_rate

    @property
    def kept_aside(self) -> int:
        """The submissions the timeline's Discord events send (a burst each for op 7 and op 9, one per late
        callback), at most half of them."""
        wanted = self.burst * (self.reconnects + self.invalid_sessions) + self.late_callbacks
        return min(wanted, self.jobs // 2)


@dataclass(frozen=True)
class PressPlan:
    """What a member will press on a result: the button (`PRESS_CYCLE`), which image for V and U (image
    1 + int(pick × the result's images)), and how long after the result appears."""

    action: str
    pick: float
    delay_s: float


def plan_members(options: ChaosOptions, rng: random.Random) -> tuple[dict[int, PressPlan], frozenset[int]]:
    """What the members will do besides submitting: the presses, by the index of the `/imagine` submission whose
    result is pressed, and the submissions whose card gets Cancel (others than those)."""
    jobs = range(options.jobs)
    chosen = sorted(rng.sample(jobs, min(round(options.jobs * options.press_share), options.jobs)))
    presses = {
        index: PressPlan(PRESS_CYCLE[turn % len(PRESS_CYCLE)], rng.random(), rng.uniform(*PRESS_DELAY_S))
        for turn, index in enumerate(chosen)
    }
    others = [index for index in jobs if index not in presses]
    cancels = frozenset(rng.sample(others, min(round(options.jobs * options.cancel_share), len(others))))
    return presses, cancels


@dataclass(frozen=True)
class SubmissionPlan:
    """What the member sends as `/imagine` number `index`: the prompt (naming the emulator's worker) and how many
    images."""

    prompt: str
    count: int


def plan_submissions(
    options: ChaosOptions, presses: Mapping[int, PressPlan], rng: random.Random
) -> list[SubmissionPlan]:
    """Every `/imagine`'s prompt and image count, by index: drawn before the run, so the same seed sends the same
    requests whatever the timing. A job to be pressed asks for two images, so V2 and U2 get pressed too."""
    plans = []
    for index in range(options.jobs):
        subject = rng.choice(SUBJECTS)
        worker = "sdxl-bucket" if rng.random() < options.url_output_share else "sdxl"
        two = index in presses or rng.random() < options.two_image_share
        plans.append(SubmissionPlan(f"chaos #{index:04d} {subject} [emulator:{worker}]", 2 if two else 1))
    return plans


@dataclass(frozen=True)
class Event:
    """Something the conductor does at `at` seconds into the submission window."""

    at: float
    # topology | kill | redis | run-reset | reconnect | invalidate | discord-5xx | discord-429 | late-callback
    action: str
    detail: str = ""


def timeline(options: ChaosOptions, rng: random.Random) -> list[Event]:
    """The run's events, in order: topology changes at equal shares of the window, then kills, Redis restarts,
    `/run` resets and Discord's failures at random moments, one per equal slot of the window so that no two of a kind
    come together. Kills take their modes in turn, 5xx and 429s their route and status (`DISCORD_5XX`,
    `DISCORD_429`).

    With `early_kills` the kills all fall in the first topology.
    """
    window = options.window_s
    stages = options.topologies
    events = [Event(window * index / len(stages), "topology", str(index)) for index in range(1, len(stages))]
    for action, count in (
        ("kill", options.kills),
        ("redis", options.redis_restarts),
        ("run-reset", options.run_resets),
        ("reconnect", options.reconnects),
        ("invalidate", options.invalid_sessions),
        ("discord-5xx", options.discord_5xx),
        ("discord-429", options.discord_429),
        ("late-callback", options.late_callbacks),
    ):
        span = window / len(stages) if action == "kill" and options.early_kills else window
        for index in range(count):
            slot = span * 0.9 / count
            events.append(Event(span * 0.05 + slot * (index + rng.uniform(0.15, 0.85)), action))
    events.sort(key=lambda event: event.at)
    labelled = []
    turns: Counter[str] = Counter()
    for event in events:
        turn = turns[event.action]
        turns[event.action] += 1
        if event.action == "kill":
            event = Event(event.at, "kill", options.kill_modes[turn % len(options.kill_modes)])
        elif event.action == "discord-5xx":
            method, status = DISCORD_5XX[turn % len(DISCORD_5XX)]
            event = Event(event.at, event.action, f"{method} {status}")
        elif event.action == "discord-429":
            method, is_global = DISCORD_429[turn % len(DISCORD_429)]
            event = Event(event.at, event.action, f"{method} global" if is_global else method)
        labelled.append(event)
    return labelled


@dataclass
class Cluster:
    """The bot processes running now; changes to the set are serialised by `lock`."""

    launcher: BotLauncher
    fake: FakeDiscordControl
    processes: list[BotProcess] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    gateway_up: asyncio.Event = field(default_factory=asyncio.Event)
    crashes: int = 0
    _watchers: set[asyncio.Task[None]] = field(default_factory=set)
    _known_sessions: set[str] = field(default_factory=set)
    # The gateway sessions of the processes running now, by session id: the process's name. A process leaves it
    # as it is stopped or killed, a session as op 9 ends it.
    _live_sessions: dict[str, str] = field(default_factory=dict)
    # After op 9: the process whose new session is awaited (discord.py identifies again after 5 s), and the wait.
    _identifying: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def gateway(self) -> BotProcess | None:
        return next((process for process in self.processes if process.connects), None)

    def posters(self) -> list[BotProcess]:
        """The processes that poll and post results."""
        return [process for process in self.processes if process.polls]

    async def start(self, role: str) -> BotProcess:
        """Launch a process; a gateway holder is awaited until its gateway session is ready."""
        if role != "poller" and self.gateway is not None:
            raise RuntimeError("only one process may hold the gateway at a time")
        self._known_sessions |= {session["id"] for session in await self.fake.sessions()}
        process = await self.launcher.launch(role)
        self.processes.append(process)
        watcher = asyncio.create_task(self._watch(process), name=f"watch-{process.name}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        if process.connects:
            await self._await_session(process)
            self.gateway_up.set()
        log.info("started %s (pid %s)", process.name, process.pid)
        return process

    async def _await_session(self, process: BotProcess) -> None:
        async def ready() -> SessionView | None:
            if not process.running:
                raise RuntimeError(f"{process.name} exited at start; see {process.log_path}")
            for session in await self.fake.sessions():
                if session["id"] not in self._known_sessions and session["connected"] and session["ready"]:
                    return session
            return None

        session = await self.fake.wait_for(ready, within=PROCESS_READY_TIMEOUT_S, what=f"{process.name} on the gateway")
        self._known_sessions.add(session["id"])
        self._live_sessions[session["id"]] = process.name

    def reached(self, interaction: InteractionView) -> bool:
        """Whether Discord gave the interaction to a session of a bot process running now (not only to sessions of
        processes stopped or killed, or ended by op 9, which Discord still keeps for a while)."""
        return bool(set(interaction["delivered_to"]) & set(self._live_sessions))

    def session_of(self, process: BotProcess) -> str | None:
        return next((sid for sid, name in self._live_sessions.items() if name == process.name), None)

    async def end_session(self, process: BotProcess) -> None:
        """Before op 9 ends the process's session: a command Discord gives only to it from now on reaches no running
        bot, and the process's next session is a new one."""
        self._known_sessions |= {session["id"] for session in await self.fake.sessions()}
        self._leaving(process)

    def expect_new_session(self, process: BotProcess) -> None:
        """After op 9: note the process's new session once it has identified one, meanwhile the timeline goes on
        (`identified` waits for it); members hold their commands until then, as while a process restarts."""
        task = asyncio.create_task(self._identify(process), name=f"identify-{process.name}")
        task.add_done_callback(_identify_done)
        self._identifying[process.name] = task

    def keep_session(self, process: BotProcess, session_id: str) -> None:
        """Op 9 did not go out after all (the session was not connected): it is still the process's."""
        self._live_sessions[session_id] = process.name
        self.gateway_up.set()

    async def _identify(self, process: BotProcess) -> None:
        await self._await_session(process)
        self.gateway_up.set()

    async def identified(self) -> None:
        """Wait until every process that op 9 sent to identify again has a session (or gave up)."""
        while self._identifying:
            name, task = next(iter(self._identifying.items()))
            await asyncio.wait([task])
            if self._identifying.get(name) is task:
                del self._identifying[name]

    def _leaving(self, process: BotProcess) -> None:
        """From now on a command Discord gives only to this process's sessions has not reached a running bot."""
        identifying = self._identifying.pop(process.name, None)
        if identifying is not None:
            identifying.cancel()
        for session_id in [sid for sid, name in self._live_sessions.items() if name == process.name]:
            del self._live_sessions[session_id]

    async def _watch(self, process: BotProcess) -> None:
        status = await process.process.wait()
        if not process.expected_exit:
            self.crashes += 1
            log.error("%s exited on its own with status %s; see %s", process.name, status, process.log_path)

    async def kill(self, victims: list[BotProcess], mode: str) -> None:
        """SIGKILL these processes and wait until they are gone."""
        for victim in victims:
            if victim.connects:
                self.gateway_up.clear()
            self._leaving(victim)
            await victim.kill()
            self.processes.remove(victim)
        log.info("killed %s (%s)", ", ".join(victim.name for victim in victims), mode)

    async def restart(self, roles: list[str]) -> None:
        # Pollers first: the jobs go on being tracked while the gateway reconnects.
        for role in sorted(roles, key=lambda role: role != "poller"):
            await self.start(role)

    async def stop(self, process: BotProcess) -> None:
        if process.connects:
            self.gateway_up.clear()
        self._leaving(process)
        status = await process.stop()
        if process in self.processes:
            self.processes.remove(process)
        log.info("stopped %s gracefully (status %s)", process.name, status)

    async def switch(self, roles: tuple[str, ...]) -> None:
        """Change to another topology: new pollers first (jobs stay tracked), then the processes no longer wanted
        stop gracefully, then the new gateway holder starts (never two on the gateway)."""
        wanted = list(roles)
        keep: list[BotProcess] = []
        for process in self.processes:
            if process.role in wanted:
                wanted.remove(process.role)
                keep.append(process)
        for role in [role for role in wanted if role == "poller"]:
            keep.append(await self.start(role))
            wanted.remove(role)
        for process in [process for process in self.processes if process not in keep]:
            await self.stop(process)
        await self.restart(wanted)
        log.info("topology now: %s", " + ".join(process.role for process in self.processes))

    async def shutdown(self) -> None:
        for task in self._identifying.values():
            task.cancel()
        for process in list(self.processes):
            await self.stop(process)
        for watcher in list(self._watchers):
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)


class ChaosRun:
    """One run of the suite; `run()` returns the audit."""

    def __init__(self, options: ChaosOptions, work_dir: Path, log_dir: Path) -> None:
        self.options = options
        self.seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1_000_000)
        self.rng = random.Random(self.seed)
        # The members' own choices (cancels, image counts, presses), apart from the conductor's: the same seed makes
        # the same choices whatever the timing (the conductor draws from `rng` as kills and restarts happen).
        self.member_rng = random.Random(self.seed + 1)
        self.planned_presses, self.planned_cancels = plan_members(options, self.member_rng)
        self.planned_submissions = plan_submissions(options, self.planned_presses, self.member_rng)
        # The `/imagine` submissions sent at a steady pace, and those the timeline's Discord events send (a burst
        # around op 7 or op 9, one command that reaches the bot late): the last ones.
        steady = options.jobs - options.kept_aside
        self._steady = range(steady)
        self._kept_aside: deque[int] = deque(range(steady, options.jobs))
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.submissions: list[Submission] = []
        self.kills = 0
        self.redis_restarts = 0
        self.run_resets = 0
        self.reconnects = 0
        self.invalid_sessions = 0
        self.discord_5xx = 0
        self.discord_429 = 0
        # Interactions whose first answer Discord refused as late (10062), read from its request log as they happen
        # (the log keeps only the last 10,000 requests).
        self.late_interactions: set[int] = set()
        self.guild_id = 0
        self.channel_ids: list[int] = []
        self.member_ids: list[int] = []
        self._next_submission: asyncio.Future[int] | None = None
        # Submissions a killed gateway holder had not answered yet.
        self.cut_short: set[int] = set()
        self.cancel_clicks = 0
        self._side_tasks: set[asyncio.Task[None]] = set()
        # Presses still to come: waiting for their result, or being pressed. The run is not settled before they end.
        self._presses: set[asyncio.Task[None]] = set()
        self._press_count = 0
        # Submissions on their way (a member whose command found no bot session tries again).
        self._sends: set[asyncio.Task[None]] = set()

    # --- set-up --------------------------------------------------------------------------------------------------

    def emulator_scenario(self) -> dict[str, Any]:
        scenario: dict[str, Any] = {
            "seed": self.seed,
            "workers": self.options.workers,
            "cold_start_s": [0.2, 1.0],
            "queue_delay_s": [0.05, 0.3],
            "execution_s": [0.5, 3.0],
            "idle_timeout_s": 10,
            "steps": 6,
            "personality": UPSCALE_PERSONALITY,
            "slow_reply_s": 1.5,
            "fault_retry_after_s": 1,
        }
        if self.options.faults:
            scenario["faults"] = {
                "status": {"server_error": 0.03, "rate_limited": 0.03, "reset": 0.02, "slow": 0.02},
                # A reset /run is ambiguous by nature (it ends "outcome unknown"): those come from the timeline.
                "run": {"server_error": 0.01, "rate_limited": 0.03, "slow": 0.02},
                "cancel": {"server_error": 0.1, "rate_limited": 0.1, "reset": 0.1, "slow": 0.1},
            }
        return scenario

    def bot_env(self, fake_info: dict[str, Any], emulator: EmulatorProcess, redis: ChaosRedis) -> dict[str, str]:
        env = {
            "DISCORD_TOKEN": str(fake_info["bot_token"]),
            "DISCORD_API_BASE_URL": str(fake_info["api_base_url"]),
            "DISCORD_GATEWAY_URL": str(fake_info["gateway_url"]),
            "RUNPOD_API_KEY": API_KEY,
            "RUNPOD_ENDPOINT_ID": ENDPOINT_ID,
            "RUNPOD_BASE_URL": emulator.base_url,
            "REDIS_URL": redis.url,
            "REDIS_PREFIX": redis.prefix,
            "DATA_DIR": str(self.work_dir / "data"),
            "MODELS_FILE": str(self.models_file()),
            "LOG_FORMAT": "json",
            # Several bot processes share this host: each takes a free port for its HTTP server.
            "HTTP_PORT": "0",
            "LOG_LEVEL": "INFO",
            "USER_COOLDOWN_S": "0",
            "USER_ACTIVE_JOBS": "1000",
            "GUILD_ACTIVE_JOBS": "0",
            "ALLOW_PRIVATE_IMAGE_URLS": "true",
            "CARD_EDIT_INTERVAL_S": "1",
            "POLL_FIRST_MS": "300",
            "POLL_QUEUED_MIN_MS": "200",
            "POLL_QUEUED_MAX_MS": "1000",
            "POLL_RUNNING_MIN_MS": "200",
            "POLL_RUNNING_MAX_MS": "1000",
        }
        if not self.options.discord_rate_limits:
            # Without Discord's limits in the fake, members submit faster than Discord would let results into a
            # channel: the run is about crashes and faults, so the bot's own pacing must not be what it waits for.
            # With them (the default) the bot paces itself as in production, each process on its own budget.
            env |= {
                "DISCORD_CHANNEL_REQUESTS": "1000",
                "DISCORD_CHANNEL_WINDOW_S": "1",
                "DISCORD_REQUESTS_PER_S": "10000",
            }
        if self.options.poll_lease_ms is not None:
            env["POLL_LEASE_MS"] = str(self.options.poll_lease_ms)
        if self.options.delivery_lease_ms is not None:
            env["DELIVERY_LEASE_MS"] = str(self.options.delivery_lease_ms)
        return env

    def models_file(self) -> Path:
        path = self.work_dir / "models.toml"
        path.write_text(MODELS_TOML.format(draws=DRAWING_MODEL, upscales=UPSCALER_MODEL, endpoint=ENDPOINT_ID))
        return path

    async def build_world(self, fake: FakeDiscordControl) -> None:
        guild = await fake.create_guild("Chaos Club")
        self.guild_id = guild["id"]
        for index in range(self.options.channels):
            self.channel_ids.append((await fake.create_channel(guild["id"], f"art-{index}"))["id"])
        for index in range(self.options.members):
            self.member_ids.append((await fake.create_member(guild["id"], f"member{index}"))["user_id"])

    # --- the run -------------------------------------------------------------------------------------------------

    async def run(self) -> tuple[ChaosReport, list[Verdict]]:
        began = time.monotonic()
        log.info(
            "chaos run: seed %s, %s jobs over %.0f s, %s kills, %s Redis restarts, faults %s",
            self.seed,
            self.options.jobs,
            self.options.window_s,
            self.options.kills,
            self.options.redis_restarts,
            "on" if self.options.faults else "off",
        )
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(aiohttp.ClientSession(timeout=HTTP_TIMEOUT))
            redis = await ChaosRedis.open(self.work_dir / "redis", _external_redis_url(), _prefix())
            stack.push_async_callback(redis.close)
            fake_process = FakeDiscordProcess(
                log_file=self.log_dir / "fake-discord.log", rate_limits=self.options.discord_rate_limits
            )
            await asyncio.to_thread(fake_process.start)
            stack.push_async_callback(asyncio.to_thread, fake_process.stop)
            fake = FakeDiscordControl(fake_process.control_url, session=http)
            emulator = EmulatorProcess(
                scenario=self.emulator_scenario(),
                work_dir=self.work_dir,
                log_path=self.log_dir / "emulator.log",
                api_key=API_KEY,
                endpoint_id=ENDPOINT_ID,
            )
            await emulator.start()
            stack.push_async_callback(emulator.stop)
            control = EmulatorControl(emulator, http)
            await self.build_world(fake)
            env = self.bot_env(dict(await fake.info()), emulator, redis)
            cluster = Cluster(BotLauncher(env, self.log_dir, self.work_dir), fake)
            stack.push_async_callback(cluster.shutdown)
            await cluster.restart(list(self.options.topologies[0]))
            store_client = create_client(redis.url)
            stack.push_async_callback(store_client.aclose)
            events = timeline(self.options, self.rng)
            log.info("timeline: %s", ", ".join(f"{e.at:.0f}s {e.action} {e.detail}".strip() for e in events))
            started = time.monotonic()
            async with self._side_tasks_cancelled():
                await asyncio.gather(
                    self.submit_all(fake, cluster, started, store_client, redis.prefix),
                    self.conduct(events, cluster, fake, redis, control, started, store_client),
                )
                while self._sends:
                    await asyncio.gather(*self._sends)
                log.info("all %s submissions sent; waiting for the system to settle", len(self.submissions))
                settled = await self.settle(fake, cluster, control, store_client, redis.prefix)
            report, verdicts = await self.collect(fake, control, store_client, redis.prefix, cluster, settled)
        report.cancel_clicks = self.cancel_clicks
        report.wall_s = round(time.monotonic() - began, 1)
        return report, verdicts

    @asynccontextmanager
    async def _side_tasks_cancelled(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            tasks = [*self._side_tasks, *self._presses, *self._sends]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # --- members -------------------------------------------------------------------------------------------------

    async def submit_all(
        self, fake: FakeDiscordControl, cluster: Cluster, started: float, redis: aioredis.Redis, prefix: str
    ) -> None:
        """Send the steady submissions, each at its moment, from several members in several channels (the others
        go with the timeline's Discord events)."""
        interval = self.options.window_s / max(1, len(self._steady))
        for turn, index in enumerate(self._steady):
            await _sleep_until(started + turn * interval + self.rng.uniform(0, interval * 0.8))
            self._send(index, fake, cluster, redis, prefix)

    def _send(
        self,
        index: int,
        fake: FakeDiscordControl,
        cluster: Cluster,
        redis: aioredis.Redis,
        prefix: str,
        channel: int | None = None,
    ) -> asyncio.Task[None]:
        """A member sends `/imagine` number `index` now (in `channel`, or the index's own), in a task of its own
        (members do not wait for each other); its press or cancel is planned once it is sent."""
        task = asyncio.ensure_future(self._submit(index, fake, cluster, redis, prefix, channel))
        task.set_name(f"submit-{index}")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)
        return task

    async def _submit(
        self,
        index: int,
        fake: FakeDiscordControl,
        cluster: Cluster,
        redis: aioredis.Redis,
        prefix: str,
        channel: int | None = None,
    ) -> None:
        member = self.member_ids[index % len(self.member_ids)]
        channel = channel if channel is not None else self.channel_ids[index % len(self.channel_ids)]
        plan = self.planned_submissions[index]
        options = {"prompt": plan.prompt, "seed": SEED_BASE + index, "count": plan.count}
        sent_at = time.monotonic()
        interaction = await self._deliver(
            fake, cluster, functools.partial(fake.invoke_command, channel, member, "imagine", options)
        )
        submission = Submission(
            index,
            interaction["id"],
            member,
            channel,
            SEED_BASE + index,
            plan.prompt,
            sent_at=sent_at,
            reached=cluster.reached(interaction),
        )
        self.submissions.append(submission)
        if self._next_submission is not None and not self._next_submission.done():
            self._next_submission.set_result(interaction["id"])
        press = self.planned_presses.get(index)
        if press is not None:
            task = asyncio.ensure_future(self.press_later(fake, cluster, redis, prefix, submission, press))
            task.set_name(f"press-{index}")
            self._presses.add(task)
            task.add_done_callback(_press_done)
            task.add_done_callback(self._presses.discard)
        elif index in self.planned_cancels:
            self._spawn(self.cancel_later(fake, submission), f"cancel-{index}")
        sent = len(self.submissions)
        if sent % 50 == 0:
            log.info("%s submissions sent", sent)

    async def _deliver(
        self, fake: FakeDiscordControl, cluster: Cluster, send: Callable[[], Awaitable[InteractionView]]
    ) -> InteractionView:
        """A member's command or click, once a bot holds the gateway (members of a server whose bot is down retry
        later)."""
        for _attempt in range(DELIVER_ATTEMPTS):
            await asyncio.wait_for(cluster.gateway_up.wait(), PROCESS_READY_TIMEOUT_S * 2)
            try:
                return await send()
            except ControlError as exc:
                if exc.status != 409 or "no bot session" not in str(exc):
                    raise
            # No session at all at this instant (sessions of dead processes still count for 3 minutes; after op 9
            # the bot waits 5 s before it starts a new one): try again once a session is there.
            await fake.wait_for(_session_ready(fake), within=PROCESS_READY_TIMEOUT_S, what="a bot session")
        raise RuntimeError(f"no bot session took the interaction after {DELIVER_ATTEMPTS} attempts")

    async def cancel_later(self, fake: FakeDiscordControl, submission: Submission) -> None:
        """The member presses Cancel on the card soon after the answer, while the job is queued or running (best
        effort: the job may be done already, or the bot down)."""

        async def answer() -> InteractionView | None:
            view = await fake.interaction(submission.interaction_id)
            return view if is_answered(view) else None

        try:
            view = await fake.wait_for(answer, within=EVENT_TIMEOUT_S, what="the answer to a submit")
        except TimeoutError:
            return
        match = CARD_LINK.search(answer_text(view))
        if match is None:
            return
        # A moment of the job's life: it runs for 0.5 to 3 s.
        await asyncio.sleep(self.rng.uniform(0, 0.5))
        with contextlib.suppress(ControlError):
            # The card names its job (its footer); it is gone once the result replaced it.
            jid = footer_job(await fake.message(int(match["card"])))
            if jid is not None:
                await fake.click_button(int(match["card"]), f"job:cancel:{jid}", submission.user_id)
                self.cancel_clicks += 1

    async def press_later(
        self,
        fake: FakeDiscordControl,
        cluster: Cluster,
        redis: aioredis.Redis,
        prefix: str,
        parent: Submission,
        plan: PressPlan,
    ) -> None:
        """The owner presses one button on the result of `parent` soon after it appears (nothing when it never
        does); the press, or the form a Remix opens, is a submission of its own."""
        result = await self._await_result(fake, redis, prefix, parent)
        if result is None:
            return
        await asyncio.sleep(plan.delay_s)
        jid = footer_job(result)
        images = len(result["attachments"])
        image = 1 + min(images - 1, int(plan.pick * images)) if plan.action in IMAGE_PRESSES else None
        button = {"vary": f"v{image}", "upscale": f"u{image}"}.get(plan.action, plan.action)
        sent_at = time.monotonic()
        try:
            click = functools.partial(fake.click_button, result["id"], f"job:{button}:{jid}", parent.user_id)
            view = await self._deliver(fake, cluster, click)
            prompt = parent.prompt
            if plan.action == "remix":
                prompt = REMIX_PREFIX + parent.prompt
                view = await self._submit_remix(fake, cluster, view, prompt)
        except ControlError as exc:
            # The button or the form was gone (the member gave up): no press.
            log.warning("%s: the press on #%04d was not sent: %s", plan.action, parent.index, exc)
            return
        self._press_count += 1
        press = Submission(
            self.options.jobs + self._press_count - 1,
            view["id"],
            parent.user_id,
            parent.channel_id,
            None,
            prompt,
            sent_at=sent_at,
            action=plan.action,
            parent=parent.index,
            image=image,
            reached=cluster.reached(view),
        )
        self.submissions.append(press)

    async def _submit_remix(
        self, fake: FakeDiscordControl, cluster: Cluster, click: InteractionView, prompt: str
    ) -> InteractionView:
        """The Remix form, sent with `prompt`: the form's submission is the job's request. A click answered with
        anything but the form (a refusal) or not at all is the submission itself."""

        async def form_or_answer() -> InteractionView | None:
            view = await fake.interaction(click["id"])
            return view if view["modal"] is not None or is_answered(view) else None

        try:
            view = await fake.wait_for(form_or_answer, within=EVENT_TIMEOUT_S, what="the Remix form")
        except TimeoutError:
            return click
        response = view["response"]
        if view["modal"] is None or response is None or response["type"] != MODAL_RESPONSE:
            return view
        # A form is sent once (the fake, like Discord, refuses a second submission): only while a bot is there.
        await asyncio.wait_for(cluster.gateway_up.wait(), PROCESS_READY_TIMEOUT_S * 2)
        return await fake.submit_modal(click["id"], {"prompt": prompt})

    async def _await_result(
        self, fake: FakeDiscordControl, redis: aioredis.Redis, prefix: str, parent: Submission
    ) -> MessageView | None:
        """The result message of `parent`'s job once posted; None when its job ended without one, or was never
        recorded. The member sees it in the channel; the suite finds it through the job's record."""
        keys = Keys(prefix)
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + self.options.window_s + self.options.settle_timeout_s
        jid: str | None = None
        while loop.time() < deadline:
            try:
                if jid is None:
                    raw_jid = await redis.get(keys.idempotency(str(parent.interaction_id)))
                    jid = raw_jid.decode() if isinstance(raw_jid, bytes) else raw_jid
                if jid is None and (loop.time() - began > SUBMIT_IN_FLIGHT_S or await self._never_a_job(fake, parent)):
                    return None
                raw = await redis.hgetall(keys.job(jid)) if jid is not None else {}
            except (RedisError, OSError):
                raw = {}  # Redis is restarting: look again
            record = TrackedJob.from_hash(raw) if raw else None
            if record is not None and record.result_message_ids:
                return await fake.message(record.result_message_ids[0])
            if record is not None and record.state is JobState.DELIVERED:
                return None
            await asyncio.sleep(PRESS_POLL_S)
        log.warning("#%04d: no result to press within %.0f s", parent.index, deadline - began)
        return None

    @staticmethod
    async def _never_a_job(fake: FakeDiscordControl, submission: Submission) -> bool:
        """Whether the submission can no longer become a job: Discord's 3 s for a first answer passed without one
        (a job starts only after the bot's acknowledgement), or the bot answered it without one (a refusal)."""
        view = await fake.interaction(submission.interaction_id)
        if view["response"] is None:
            now = datetime.fromisoformat(await fake.now())
            return now - datetime.fromisoformat(view["created_at"]) > FIRST_ANSWER
        return is_answered(view) and not CARD_LINK.search(answer_text(view))

    # --- the conductor -------------------------------------------------------------------------------------------

    async def conduct(
        self,
        events: list[Event],
        cluster: Cluster,
        fake: FakeDiscordControl,
        redis: ChaosRedis,
        control: EmulatorControl,
        started: float,
        store: aioredis.Redis,
    ) -> None:
        """Carry out the timeline, one event at a time (so no two changes to the processes overlap)."""
        for event in events:
            await _sleep_until(started + event.at)
            if event.action in GATEWAY_FAULTS:
                async with cluster.lock:
                    await self.gateway_fault(event.action, fake, cluster, store, redis.prefix)
            elif event.action == "late-callback":
                async with cluster.lock:
                    await self.late_callback(fake, cluster, store, redis.prefix)
            elif event.action in ("discord-5xx", "discord-429"):
                await self.message_fault(event, fake)
            elif event.action == "topology":
                async with cluster.lock:
                    await cluster.switch(self.options.topologies[int(event.detail)])
            elif event.action == "kill":
                async with cluster.lock:
                    await self.kill(event.detail, cluster, fake)
            elif event.action == "redis":
                if redis.restartable:
                    down = await redis.restart()
                    self.redis_restarts += 1
                    log.info("restarted Redis (down %.2f s)", down)
            elif event.action == "run-reset":
                await control.script_faults("run", ["reset"])
                self.run_resets += 1
                log.info("the next /run will be reset after RunPod took it")

    async def gateway_fault(
        self, action: str, fake: FakeDiscordControl, cluster: Cluster, store: aioredis.Redis, prefix: str
    ) -> None:
        """Op 7 (`reconnect`) or op 9 (`invalidate`, not resumable) to the gateway holder in the middle of a burst
        of `/imagine` from several members; returns once the bot has resumed (op 7) or was sent op 9 (its new session
        is awaited in the background)."""
        await cluster.identified()
        gateway = cluster.gateway
        session_id = cluster.session_of(gateway) if gateway is not None else None
        if gateway is None or session_id is None:
            log.warning("no gateway session for a %s", action)
            return
        burst = [self._kept_aside.popleft() for _ in range(min(self.options.burst, len(self._kept_aside)))]
        before, after = burst[: len(burst) // 2], burst[len(burst) // 2 :]
        pause = BURST_S / max(1, len(burst))
        # All in one channel, as after an announcement there: more cards at once than its 5 posts per 5 s.
        channel = self.rng.choice(self.channel_ids)
        for index in before:
            self._send(index, fake, cluster, store, prefix, channel)
            await asyncio.sleep(pause)
        resumes = next((s["resumes"] for s in await fake.sessions() if s["id"] == session_id), 0)
        if action == "reconnect":
            done = await fake.reconnect(session_id)
        else:
            # Until the new session, Discord has no running bot to give a command to (a member would read "did not
            # respond" and try again): members hold theirs, as while a process restarts.
            cluster.gateway_up.clear()
            await cluster.end_session(gateway)
            done = await fake.invalidate_session(session_id, resumable=False)
            if done:
                cluster.expect_new_session(gateway)
            else:
                cluster.keep_session(gateway, session_id)
        for index in after:
            self._send(index, fake, cluster, store, prefix, channel)
            await asyncio.sleep(pause)
        if not done:
            log.warning("the gateway session was gone before the %s", action)
            return
        try:
            if action == "reconnect":
                self.reconnects += 1
                await fake.wait_for_resume(session_id, resumes + 1, within=EVENT_TIMEOUT_S)
                log.info("op 7 sent amid a burst of %s; %s resumed its session", len(burst), gateway.name)
            else:
                self.invalid_sessions += 1
                log.info("op 9 sent amid a burst of %s; %s starts a new session in 5 s", len(burst), gateway.name)
        except TimeoutError:
            log.warning("%s did not come back on the gateway after a %s", gateway.name, action)

    async def late_callback(
        self, fake: FakeDiscordControl, cluster: Cluster, store: aioredis.Redis, prefix: str
    ) -> None:
        """A member's command reaches the bot after Discord's 3 s deadline: the gateway connection stalls, the
        command goes out (and any other sent meanwhile), Discord's clock moves past the deadline, the connection
        drops, and the bot resumes and gets the commands replayed, too late to acknowledge them."""
        await cluster.identified()
        gateway = cluster.gateway
        session_id = cluster.session_of(gateway) if gateway is not None else None
        if gateway is None or session_id is None or not self._kept_aside:
            log.warning("no gateway session (or no submission left) for a late callback")
            return
        if self._sends:
            # Commands still on their way (members trying again after op 9, say) go out first: the late one is the
            # member's below, and whatever else a member happens to send in the next few milliseconds.
            await asyncio.wait(list(self._sends), timeout=EVENT_TIMEOUT_S)
        with contextlib.suppress(TimeoutError):
            # ... and are acknowledged before Discord's clock jumps (or were late anyway).
            await fake.wait_for(self._acknowledged(fake), within=FIRST_ANSWER.total_seconds(), what="acknowledgements")
        resumes = next((s["resumes"] for s in await fake.sessions() if s["id"] == session_id), 0)
        if not await fake.stall_connection(session_id):
            return
        index = self._kept_aside.popleft()
        await self._send(index, fake, cluster, store, prefix)
        await fake.advance_clock(LATE_BY_S)
        await fake.drop_connection(session_id)
        late = next((s for s in self.submissions if s.index == index), None)

        async def refused() -> bool | None:
            await self._note_late(fake)
            return True if late is None or late.interaction_id in self.late_interactions else None

        try:
            await fake.wait_for_resume(session_id, resumes + 1, within=EVENT_TIMEOUT_S)
            await fake.wait_for(refused, within=EVENT_TIMEOUT_S, what="the late command's answer refused")
            log.info("a command reached %s %.1f s late (by Discord's clock)", gateway.name, LATE_BY_S)
        except TimeoutError:
            log.warning("%s did not resume, or answer the late command, after the connection dropped", gateway.name)

    def _acknowledged(self, fake: FakeDiscordControl) -> Callable[[], Awaitable[bool | None]]:
        """A check: every submission of the last few seconds that reached a running bot has its acknowledgement."""

        async def check() -> bool | None:
            recent = [s for s in self.submissions if s.reached and time.monotonic() - s.sent_at < LATE_BY_S]
            for submission in recent:
                if (await fake.interaction(submission.interaction_id))["response"] is None:
                    return None
            return True

        return check

    async def _note_late(self, fake: FakeDiscordControl) -> None:
        """Remember the interactions whose first answer Discord has refused as late so far."""
        for request in await fake.requests(errors_only=True):
            match = CALLBACK.match(request["path"])
            if match is not None and request["code"] == UNKNOWN_INTERACTION:
                self.late_interactions.add(int(match["id"]))

    async def message_fault(self, event: Event, fake: FakeDiscordControl) -> None:
        """A 5xx or a 429 for the next message post (a card, a result, an outcome) or card edit."""
        method, *rest = event.detail.split()
        path = MESSAGE_ROUTES[method]
        armed = datetime.fromisoformat(await fake.now())
        if event.action == "discord-5xx":
            await fake.inject_error(status=int(rest[0]), message="injected server error", method=method, path=path)
        else:
            is_global = rest == ["global"]
            await fake.inject_rate_limit(
                method=method, path=path, retry_after=INJECTED_RETRY_AFTER_S, is_global=is_global
            )
        answer = event.detail.removeprefix(method).strip() or "429"

        async def answered() -> bool | None:
            for request in await fake.requests(errors_only=True):
                if request["injected"] and datetime.fromisoformat(request["at"]) >= armed:
                    return True
            return None

        try:
            await fake.wait_for(answered, within=EVENT_TIMEOUT_S, what=f"a {method} of a message")
            if event.action == "discord-5xx":
                self.discord_5xx += 1
            else:
                self.discord_429 += 1
            log.info("a %s of a message was answered %s", method, answer)
        except TimeoutError:
            # Not left armed: it would meet a later kill's held post.
            await fake.clear_faults()
            log.warning("no %s of a message came to be answered %s", method, answer)

    async def kill(self, mode: str, cluster: Cluster, fake: FakeDiscordControl) -> None:
        """One kill; `mode` says when and whom (see the module docstring)."""
        victims: list[BotProcess]
        if mode == "submit":
            victims = [process for process in [cluster.gateway] if process is not None]
            await self._await_submit_in_flight(fake)
        elif mode == "delivery":
            victims = await self._await_delivery_in_flight(fake, cluster)
        elif mode == "card":
            victims = await self._await_card_in_flight(fake, cluster)
        elif mode == "host":
            victims = list(cluster.processes)
        else:
            victims = [self.rng.choice(cluster.processes)]
        if not victims:
            log.warning("no process to kill for a %s kill", mode)
            return
        roles = [victim.role for victim in victims]
        await cluster.kill(victims, mode)
        self.kills += 1
        if any(victim.connects for victim in victims):
            await self._note_cut_short(fake)
        # A supervisor (systemd, Docker) restarts a dead process after a short pause.
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await cluster.restart(roles)

    async def _note_cut_short(self, fake: FakeDiscordControl) -> None:
        """Remember the submissions the killed gateway holder had not answered: they may end "outcome unknown"."""
        recent = [s for s in self.submissions if time.monotonic() - s.sent_at < SUBMIT_IN_FLIGHT_S]
        for submission in recent:
            if not is_answered(await fake.interaction(submission.interaction_id)):
                self.cut_short.add(submission.index)

    async def _await_submit_in_flight(self, fake: FakeDiscordControl) -> None:
        """Return just after the bot acknowledged the next submission: it is recording it and calling /run."""
        loop = asyncio.get_running_loop()
        self._next_submission = loop.create_future()
        try:
            interaction_id = await asyncio.wait_for(self._next_submission, EVENT_TIMEOUT_S)

            async def acknowledged() -> bool | None:
                return True if (await fake.interaction(interaction_id))["response"] is not None else None

            await fake.wait_for(acknowledged, within=EVENT_TIMEOUT_S, what="the acknowledgement of a submit")
        except TimeoutError:
            log.warning("no submission was acknowledged in time; killing anyway")
        finally:
            self._next_submission = None
        # Somewhere in the few milliseconds between the acknowledgement and the member's answer.
        await asyncio.sleep(self.rng.uniform(0, 0.02))

    async def _hold_post(self, fake: FakeDiscordControl, *, uploads: bool) -> bool:
        """Hold back the reply to the next message post that uploads files (a result) or not (a job card): Discord
        then has the message and the bot does not know it yet. False when none came in time."""
        await fake.inject_delay(seconds=HELD_REPLY_S, method="POST", path=MESSAGE_POST, multipart=uploads)

        async def held() -> bool | None:
            return True if any(request["multipart"] == uploads for request in await fake.held_requests()) else None

        try:
            return await fake.wait_for(held, within=EVENT_TIMEOUT_S, what="a message post")
        except TimeoutError:
            await fake.clear_faults()
            return False

    async def _await_delivery_in_flight(self, fake: FakeDiscordControl, cluster: Cluster) -> list[BotProcess]:
        """Whom to kill with a result upload half done (Discord has it, the bot has not heard)."""
        posters = cluster.posters()
        if not await self._hold_post(fake, uploads=True):
            log.warning("no result upload came in time; killing a poster anyway")
        # With one poster the upload is surely its own; with two, either may have sent it.
        return posters if len(posters) == 1 else [self.rng.choice(posters)]

    async def _await_card_in_flight(self, fake: FakeDiscordControl, cluster: Cluster) -> list[BotProcess]:
        """Whom to kill with a job card half posted (Discord has it, the bot has not stored its id)."""
        if not await self._hold_post(fake, uploads=False):
            log.warning("no card post came in time; killing the gateway anyway")
        return [process for process in [cluster.gateway] if process is not None]

    # --- the end -------------------------------------------------------------------------------------------------

    async def settle(
        self,
        fake: FakeDiscordControl,
        cluster: Cluster,
        control: EmulatorControl,
        redis: aioredis.Redis,
        prefix: str,
    ) -> bool:
        """Wait (bounded) until no job is left to act on, RunPod is idle, no press is still to come and every
        answerable submission is answered; re-check after each change the fake Discord sees, at least every
        second."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.settle_timeout_s
        keys = Keys(prefix)
        version = await fake.version()
        last_report = loop.time()
        while loop.time() < deadline:
            # Answers first: a submission is recorded (and scheduled) before it is answered, so once every one is
            # answered, an empty schedule read after that is the last word (read before, it could miss a job that
            # was being recorded then).
            answered = not self._presses and await self._all_answered(fake)
            due = await redis.zcard(keys.due(ENDPOINT_ID))
            running = _runpod_busy(await control.counters())
            if answered and due == 0 and running == 0:
                return True
            if loop.time() - last_report > 10:
                last_report = loop.time()
                log.info(
                    "settling: %s jobs still scheduled, %s at RunPod, %s presses to come",
                    due,
                    running,
                    len(self._presses),
                )
            version = await fake.wait_for_change(version, within=1.0)
        log.error("the system did not settle within %.0f s", self.options.settle_timeout_s)
        return False

    async def _all_answered(self, fake: FakeDiscordControl) -> bool:
        """Every submission has its answer, or none can come (the sessions it went to are gone, or Discord's 3 s
        for a first answer passed without one). "Thinking…" is no answer: between it and the job's record the bot
        may still be at work (fetching a V or U press's image), with nothing scheduled yet."""
        connected = {session["id"] for session in await fake.sessions() if session["connected"]}
        now = datetime.fromisoformat(await fake.now())
        for submission in self.submissions:
            view = await fake.interaction(submission.interaction_id)
            expired = view["response"] is None and now - datetime.fromisoformat(view["created_at"]) > FIRST_ANSWER
            if not answer_text(view) and not expired and connected & set(view["delivered_to"]):
                return False
        return True

    async def collect(
        self,
        fake: FakeDiscordControl,
        control: EmulatorControl,
        redis: aioredis.Redis,
        prefix: str,
        cluster: Cluster,
        settled: bool,
    ) -> tuple[ChaosReport, list[Verdict]]:
        """Gather what Discord, Redis and RunPod show, and audit it."""
        # The audit's own /status reads must not meet injected faults.
        await control.patch_scenario(faults={}, fault_script={})
        interactions = {view["id"]: view for view in await fake.interactions()}
        messages: list[MessageView] = []
        for channel_id in self.channel_ids:
            messages += await fake.channel_messages(channel_id)
        records = await _records(redis, prefix)
        usage = await _gpu_usage(redis, prefix)
        counters = await control.counters()
        runpod_jobs = await _runpod_jobs(control, counters)
        sources = await self._press_sources(fake, messages, records)
        await self._note_late(fake)
        late = frozenset(s.index for s in self.submissions if s.interaction_id in self.late_interactions)
        report, verdicts = audit(
            self.submissions,
            interactions,
            messages,
            records,
            runpod_jobs,
            counters,
            kills=self.kills,
            redis_restarts=self.redis_restarts,
            run_resets=self.run_resets,
            crashes=cluster.crashes,
            cut_short=self.cut_short,
            settled=settled,
            seed=self.seed,
            sources=sources,
            usage=usage,
            late=late,
        )
        report.gateway_reconnects = self.reconnects
        report.gateway_invalid_sessions = self.invalid_sessions
        report.discord_5xx = self.discord_5xx
        report.discord_429 = self.discord_429
        report.late_callbacks = len(self.late_interactions)
        report.discord_rate_limited = (await fake.rate_limit_stats())["limited"]
        return report, verdicts

    async def _press_sources(
        self, fake: FakeDiscordControl, messages: Sequence[MessageView], records: Sequence[TrackedJob]
    ) -> dict[int, int | None]:
        """For each delivered V<n> or U<n> press, which image of its parent's result its own image was drawn from
        (None: none of them), from the images as Discord serves them."""
        results = result_messages(messages)
        jid_of = {record.request_id: record.jid for record in records if record.request_id}
        by_index = {submission.index: submission for submission in self.submissions}
        sources: dict[int, int | None] = {}
        for press in self.submissions:
            if press.action not in IMAGE_PRESSES or press.parent is None:
                continue
            mine = results.get(jid_of.get(str(press.interaction_id), ""), [])
            if not mine:
                continue
            theirs = results.get(jid_of.get(str(by_index[press.parent].interaction_id), ""), [])
            drawn = await _image(fake, mine[0]["attachments"][0]["url"])
            candidates = [await _image(fake, item["url"]) for item in theirs[0]["attachments"]] if theirs else []
            sources[press.index] = await asyncio.to_thread(drawn_from, drawn, candidates)
        return sources


def _press_done(task: asyncio.Task[None]) -> None:
    """A press the suite itself failed to make is said, not left as an unretrieved exception."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed: %r", task.get_name(), task.exception())


def _identify_done(task: asyncio.Task[None]) -> None:
    """A bot process that did not come back on the gateway after op 9 is said (its exit is a crash of its own)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed: %r", task.get_name(), task.exception())


def _session_ready(fake: FakeDiscordControl) -> Callable[[], Awaitable[bool | None]]:
    async def check() -> bool | None:
        return True if any(s["connected"] and s["ready"] for s in await fake.sessions()) else None

    return check


def _runpod_busy(counters: dict[str, Any]) -> int:
    jobs = counters.get("jobs", {})
    return int(jobs.get("IN_QUEUE", 0)) + int(jobs.get("IN_PROGRESS", 0))


async def _records(redis: aioredis.Redis, prefix: str) -> list[TrackedJob]:
    """Every job record under the prefix."""
    records = []
    async for key in redis.scan_iter(match=Keys(prefix).job("*"), count=500):
        raw = await redis.hgetall(key)
        if raw:
            records.append(TrackedJob.from_hash(raw))
    return records


async def _gpu_usage(redis: aioredis.Redis, prefix: str) -> GpuUsage:
    """The usage sums of every month under the prefix, and the jobs whose record is marked counted."""
    keys = Keys(prefix)
    jobs = gpu_ms = 0
    async for key in redis.scan_iter(match=keys.usage_totals("month:*"), count=500):
        sums = await redis.hmget(key, ["jobs", "gpu_ms"])
        jobs, gpu_ms = jobs + int(sums[0] or 0), gpu_ms + int(sums[1] or 0)
    counted = set()
    async for key in redis.scan_iter(match=keys.job("*"), count=500):
        if await redis.hget(key, COUNTED_FIELD):
            counted.add(key.decode().removeprefix(keys.job("")))
    return GpuUsage(jobs, gpu_ms, frozenset(counted))


# Where a worker's input names the image it starts from: worker-sdxl, stable-diffusion-v1, worker-esrgan.
SOURCE_INPUTS = ("image_url", "init_image", "data_url")


async def _runpod_jobs(control: EmulatorControl, counters: dict[str, Any]) -> list[RunPodJob]:
    """Every job the emulator ran, with the seed its input asked for (or its output shows) and the image it
    started from."""
    gate = asyncio.Semaphore(8)

    async def read(job_id: str, status: str) -> RunPodJob:
        async with gate:
            job = await control.job(job_id)
        job_input, output = job.get("input") or {}, job.get("output")
        seed = job_input.get("seed")
        if not isinstance(seed, int) and isinstance(output, dict):
            seed = output.get("seed")
        source = next((job_input[key] for key in SOURCE_INPUTS if isinstance(job_input.get(key), str)), None)
        execution_ms = job.get("executionTime")
        execution = execution_ms if isinstance(execution_ms, int) else None
        return RunPodJob(job_id, status, seed if isinstance(seed, int) else None, source, execution)

    terminal: dict[str, dict[str, Any]] = counters.get("terminal", {})
    return list(await asyncio.gather(*(read(job_id, entry["status"]) for job_id, entry in terminal.items())))


async def _image(fake: FakeDiscordControl, url: str) -> Image.Image:
    data = await fake.attachment_bytes(url)
    return await asyncio.to_thread(_decoded, data)


def _decoded(data: bytes) -> Image.Image:
    with Image.open(BytesIO(data)) as image:
        return image.convert("RGB")


async def _sleep_until(moment: float) -> None:
    """Wait for a moment of the run's schedule (the load's pace, not a condition)."""
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _external_redis_url() -> str | None:
    import os

    return os.environ.get("REDIS_URL") or None


def _prefix() -> str:
    # A prefix of its own, so a run against a shared REDIS_URL never touches anything else.
    return f"chaos{random.SystemRandom().randrange(16**6):06x}"


def _work_dirs(options: ChaosOptions) -> tuple[Path, Path]:
    # A short path under /tmp: the embedded Redis's unix socket path must stay under about 100 characters.
    work = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp" if Path("/tmp").is_dir() else None))
    log_dir = options.log_dir or work / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    return work, log_dir


def _clean_up(work: Path, options: ChaosOptions, report: ChaosReport) -> None:
    # A failed run keeps everything for whoever investigates; with --keep-logs the logs are elsewhere already.
    if options.log_dir is not None or report.ok:
        shutil.rmtree(work, ignore_errors=True)


async def run_chaos(options: ChaosOptions) -> tuple[ChaosReport, list[Verdict], Path]:
    """Run the suite; returns the report, every submission's verdict, and where the logs are."""
    work, log_dir = await asyncio.to_thread(_work_dirs, options)
    try:
        report, verdicts = await ChaosRun(options, work, log_dir).run()
    except BaseException:
        log.error("the run failed; its logs are in %s", log_dir)
        raise
    await asyncio.to_thread(_clean_up, work, options, report)
    return report, verdicts, log_dir
