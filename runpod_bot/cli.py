"""The `runpod-bot` command line: run the bot, check the configuration, and drive the job core from a terminal.

`imagine`, `status`, `cancel`, `jobs` and `health` use the same core as the Discord bot. `--local` runs offline:
the RunPod emulator in this process and the embedded Redis, with no credentials at all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from runpod_bot.core import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, Role, cancel_on_signals

# Each command imports what it uses when it runs: `--help` loads none of the bot, `status` and `jobs` the settings,
# Redis and the store, and only the commands that ask RunPod load its HTTP client and the rest of the core. Discord
# (discord.py, the cogs, Pillow's drawing) is imported only by `run` and `check`.
if TYPE_CHECKING:
    import aiohttp
    import redis.asyncio as aioredis

    from runpod_bot.console import TerminalNotifier
    from runpod_bot.core import Core
    from runpod_bot.settings import Settings
    from storage.models import TrackedJob
LOCAL_API_KEY = "local-emulator-key"
LOCAL_ENDPOINT_ID = "local"
# Exit statuses besides core.EXIT_*: `imagine` gave up waiting (as timeout(1) does); Ctrl-C, as shells report it.
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130
# RunPod deletes a job when its ttl (MAX_QUEUE_WAIT_S + EXECUTION_TIMEOUT_S + 35 min) runs out, so a poll soon
# after reports how it ended: by default `imagine` waits that long and this much more, so the deadline only cuts
# short a wait that cannot end.
TIMEOUT_MARGIN_S = 60
# How long `imagine`, having given up, waits to see its cancel reach the job before it exits.
CANCEL_GRACE_S = 10.0
# SIGINT is asyncio.run's own (it raises KeyboardInterrupt); these stop a command the same orderly way.
CLI_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

T = TypeVar("T")


def seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def month(text: str) -> str:
    """An argparse type: a month written YYYY-MM."""
    from storage.usage import month_named

    try:
        month_named(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runpod-bot", description="A Discord bot that generates images on RunPod Serverless."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the Discord bot")
    run.add_argument(
        "--role",
        choices=[role.value for role in Role],
        default=Role.ALL.value,
        help="all (default): everything in one process; gateway: Discord commands only; "
        "poller: track jobs and deliver results through Discord's REST API, without a gateway connection",
    )
    commands.add_parser("check", help="validate the configuration, Redis and each model's RunPod endpoint")
    # The emulator parses its own options (the same as `python -m runpod_emulator`); `add_help=False` lets
    # `runpod-bot emulator --help` show them.
    commands.add_parser(
        "emulator", help="serve a local RunPod endpoint (options: runpod-bot emulator --help)", add_help=False
    )

    imagine = commands.add_parser("imagine", help="generate images from the terminal and save them")
    imagine.add_argument("prompt")
    imagine.add_argument("--model", help="a model name from models.toml (default: the default model)")
    imagine.add_argument("--negative", help="negative prompt")
    imagine.add_argument("--size", help="WIDTHxHEIGHT, one of the model's sizes")
    imagine.add_argument("--steps", type=int)
    imagine.add_argument("--guidance", type=float)
    imagine.add_argument("--seed", type=int)
    imagine.add_argument("--count", type=int, help="number of images (1-4)")
    imagine.add_argument("--out", type=Path, default=Path("out"), help="folder for the images (default: out/)")
    imagine.add_argument("--local", action="store_true", help="offline: the emulator and the embedded Redis")
    imagine.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="give up waiting after this long, cancel the job at RunPod and exit 124 "
        f"(default: the RunPod ttl + {TIMEOUT_MARGIN_S} s, when RunPod itself has ended the job)",
    )

    status = commands.add_parser("status", help="show one job")
    status.add_argument("job", help="the job's id, or the id RunPod gave it")
    cancel = commands.add_parser("cancel", help="cancel a job (as an operator)")
    cancel.add_argument("job", help="the job's id, or the id RunPod gave it")
    jobs = commands.add_parser("jobs", help="list unfinished jobs, or a member's recent jobs")
    jobs.add_argument("--user", type=int, help="a Discord user id (0: jobs started from this command line)")
    health = commands.add_parser("health", help="workers and queue of each model, and the tracker's own counts")
    health.add_argument("--local", action="store_true", help="ask a local emulator instead of RunPod")
    usage = commands.add_parser(
        "usage", help="GPU time used in a month (UTC): the bot's, each model's and every server's, or one server's"
    )
    usage.add_argument(
        "--guild", type=int, metavar="ID", help="one server: its models and members (0: outside any server)"
    )
    usage.add_argument("--month", type=month, metavar="YYYY-MM", help="another month (default: this one, in UTC)")
    usage.add_argument("--json", action="store_true", help="JSON instead of tab-separated columns")
    return parser


@dataclass
class Environment:
    """What a command works with: effective settings, Redis, the HTTP session and the core."""

    settings: Settings
    redis: aioredis.Redis
    http: aiohttp.ClientSession
    core: Core


@asynccontextmanager
async def environment(settings: Settings, *, local: bool, prefix: str | None = None) -> AsyncIterator[Environment]:
    """The core from the composition root; with `local`, an in-process emulator replaces RunPod."""
    from runpod_bot.core import open_core

    if not local:
        async with open_core(settings, prefix=prefix) as core:
            yield Environment(settings, core.redis, core.http, core)
        return
    # Only the command line's local mode starts the emulator; the bot never imports it.
    from pydantic import SecretStr

    from jobs.presets import default_catalog
    from runpod_emulator import EmulatorConfig, run_emulator

    async with run_emulator(EmulatorConfig(api_key=LOCAL_API_KEY, endpoint_id=LOCAL_ENDPOINT_ID)) as emulator:
        local_settings = settings.model_copy(
            update={
                "runpod_base_url": emulator.base_url,
                "runpod_api_key": SecretStr(LOCAL_API_KEY),
                "runpod_endpoint_id": LOCAL_ENDPOINT_ID,
                # The emulator serves some image shapes as URLs on loopback.
                "allow_private_image_urls": True,
            }
        )
        async with open_core(local_settings, prefix=prefix, catalog=default_catalog(LOCAL_ENDPOINT_ID)) as core:
            yield Environment(local_settings, core.redis, core.http, core)


async def imagine(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.presets import InvalidRequestError, RequestOptions
    from jobs.service import DeniedTermError, JobServiceError, SubmitFailedError
    from runpod_bot.console import CLI_REQUESTER, TerminalNotifier
    from runpod_bot.core import cli_prefix
    from storage.store import CooldownError, QuotaExceededError

    options = RequestOptions(
        prompt=args.prompt,
        negative_prompt=args.negative,
        size=args.size,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        count=args.count,
    )
    async with environment(settings, local=args.local, prefix=cli_prefix(settings)) as env:
        notifier = TerminalNotifier(out_dir=args.out)
        # This job only: another terminal's `imagine` on the same Redis tracks (and saves) its own. Built before the
        # submit, so that a fast model's /runsync reply holding the images is saved from the reply.
        mine: set[str] = set()
        poller = env.core.poller(notifier, only=mine)
        env.core.service.handoff.attach(poller)

        async def watch(job: TrackedJob) -> None:
            mine.add(job.jid)
            notifier.watch.add(job.jid)

        try:
            submission = await env.core.service.submit(options, CLI_REQUESTER, model=args.model, before_run=watch)
        except InvalidRequestError as exc:
            print(f"invalid request: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        except DeniedTermError as exc:
            # The operator's own list (a terminal has no server, so no /denylist applies): say where it comes from.
            print(
                f"not submitted: the term “{exc.term}” is on PROMPT_DENYLIST, which every prompt is checked against; "
                "rephrase, or take the term off PROMPT_DENYLIST",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        except (QuotaExceededError, CooldownError, JobServiceError) as exc:
            reason = exc.reason if isinstance(exc, SubmitFailedError) else str(exc)
            print(f"not submitted: {reason}", file=sys.stderr)
            if isinstance(exc, SubmitFailedError):
                # Said here: the job is done (nothing else would show its outcome).
                await env.core.service.outcome_shown(exc)
            return EXIT_FAILURE
        job, request = submission.job, submission.request
        print(
            f"{job.jid}: submitted to {job.model} ({request.size}, {request.steps} steps, "
            f"guidance {request.guidance:g}, seed {request.seed}, {request.count} image(s))",
            flush=True,
        )
        timeout_s = (
            args.timeout
            if args.timeout is not None
            else env.core.service.run_settings.policy_ttl_ms / 1000 + TIMEOUT_MARGIN_S
        )
        # Owned by the core: stopped and awaited in `finally`, so its end (or failure) is never lost.
        polling = env.core.start_polling(poller)
        try:
            if not await finished_within(notifier.event(job.jid), timeout_s):
                return await give_up(env, notifier, job.jid, timeout_s)
        except asyncio.CancelledError:
            if not args.local:
                # Nobody else polls a terminal's job: say that its images will not arrive, and how to stop paying.
                print(
                    f"{job.jid}: no longer waiting; the job goes on at RunPod but its images will not be saved "
                    f"(`runpod-bot cancel {job.jid}` stops it)",
                    file=sys.stderr,
                    flush=True,
                )
            raise
        finally:
            await env.core.stop_polling(poller, polling)
        return EXIT_OK if notifier.saved.get(job.jid) else EXIT_FAILURE


async def finished_within(event: asyncio.Event, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def give_up(env: Environment, notifier: TerminalNotifier, jid: str, timeout_s: float) -> int:
    """Stop waiting: cancel the job at RunPod (no one else would collect its paid result) and say how to follow it."""
    from jobs.access import Actor
    from jobs.labels import state_label
    from jobs.service import CancelOutcome, JobServiceError
    from runpod_bot.console import CLI_USER_ID
    from runpod_client.errors import RunPodError
    from storage.models import JobState

    print(f"{jid}: no result within {timeout_s:g} s (--timeout); cancelling it at RunPod.", file=sys.stderr, flush=True)
    try:
        cancelled = await env.core.service.cancel(jid, Actor(user_id=CLI_USER_ID, operator=True))
    except (JobServiceError, RunPodError) as exc:
        print(f"{jid}: could not cancel it: {exc}", file=sys.stderr)
    else:
        if cancelled.runpod is not None and cancelled.runpod.outcome is CancelOutcome.UNSUPPORTED:
            # RunPod's local worker server: say what happens instead of "cancelled at RunPod".
            print(f"{jid}: {cancelled.summary().replace('`', '')}", file=sys.stderr)
            await finished_within(notifier.event(jid), CANCEL_GRACE_S)
            return EXIT_TIMEOUT
    # The cancel made the job due: the poller, still running, sees it through and reports how it ended.
    if await finished_within(notifier.event(jid), CANCEL_GRACE_S):
        if notifier.saved.get(jid):
            # It completed just before the cancel reached it: the images are saved after all.
            return EXIT_OK
        ended = await env.core.store.get(jid)
        if ended is not None and ended.final_state is JobState.CANCELLED:
            print(f"{jid}: cancelled at RunPod; see `runpod-bot status {jid}`", file=sys.stderr)
        else:
            state = state_label(ended).lower() if ended is not None else "unknown"
            print(f"{jid}: it ended meanwhile ({state}); see `runpod-bot status {jid}`", file=sys.stderr)
    else:
        print(
            f"{jid}: the cancel is not confirmed yet, so it may still be running: see `runpod-bot status {jid}`, "
            f"and `runpod-bot cancel {jid}` to ask again",
            file=sys.stderr,
        )
    return EXIT_TIMEOUT


async def show_status(args: argparse.Namespace, settings: Settings) -> int:
    from runpod_bot.console import find_job, format_job
    from runpod_bot.core import job_stores, open_redis_for

    async with open_redis_for(settings) as redis:
        found = await find_job(job_stores(settings, redis), args.job)
    if found is None:
        print(f"no job {args.job}", file=sys.stderr)
        return EXIT_FAILURE
    print(format_job(found[1]))
    return EXIT_OK


async def cancel(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.access import Actor
    from jobs.service import CancelOutcome, JobServiceError
    from runpod_bot.console import CLI_USER_ID, find_job
    from runpod_bot.core import build_core, job_stores
    from runpod_client.errors import RunPodError

    async with environment(settings, local=False) as env:
        found = await find_job(job_stores(env.settings, env.redis), args.job)
        if found is None:
            print(f"no job {args.job}", file=sys.stderr)
            return EXIT_FAILURE
        store, job = found
        service = env.core.service
        if store.config.prefix != env.core.store.config.prefix:
            service = build_core(env.settings, env.redis, env.http, prefix=store.config.prefix).service
        try:
            # The command line is the operator's: it may cancel any job.
            result = await service.cancel(job.jid, Actor(user_id=CLI_USER_ID, operator=True))
        except (JobServiceError, RunPodError) as exc:
            print(f"not cancelled: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    if result.runpod is not None and result.runpod.outcome is CancelOutcome.ACCEPTED:
        print(f"{job.jid}: cancel sent; RunPod accepted it")
    else:
        print(f"{job.jid}: {result.summary().replace('`', '')}")
    return EXIT_OK


async def list_jobs(args: argparse.Namespace, settings: Settings) -> int:
    from runpod_bot.console import format_jobs_table
    from runpod_bot.core import job_stores, open_redis_for

    async with open_redis_for(settings) as redis:
        found: list[TrackedJob] = []
        for store in job_stores(settings, redis):
            if args.user is not None:
                found += await store.user_recent(args.user, limit=25)
            else:
                for endpoint_id in await store.endpoint_ids():
                    found += await store.scheduled(endpoint_id)
    found.sort(key=lambda job: job.created_at, reverse=True)
    print(format_jobs_table(found))
    return EXIT_OK


async def health(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.health import tracking
    from runpod_bot.console import format_health_table, format_tracking
    from runpod_bot.core import job_stores

    async with environment(settings, local=args.local) as env:
        rows = await env.core.service.endpoint_health(env.core.catalog.models)
        print(format_health_table(rows))
        print()
        # The bot's jobs and this command line's, each under its own prefix.
        for store in job_stores(env.settings, env.redis):
            print(format_tracking(store.config.prefix, await tracking(store)))
    return EXIT_OK if all(row.error is None for row in rows) else EXIT_FAILURE


async def show_usage(args: argparse.Namespace, settings: Settings) -> int:
    """The month's GPU time, as the operator sees it: every server (and the command line's own jobs), or one."""
    import json

    from jobs.access import Actor
    from jobs.usage import UsageService
    from runpod_bot.console import CLI_USER_ID, format_usage_table, usage_row, usage_rows
    from runpod_bot.core import cli_prefix, open_redis_for
    from storage.keys import Keys
    from storage.usage import UsageStore

    operator = Actor(user_id=CLI_USER_ID, operator=True)
    async with open_redis_for(settings) as redis:
        bot = UsageService(UsageStore(redis, Keys(settings.redis_prefix)))
        if args.guild is not None:
            server = await bot.server_month(operator, args.guild, args.month)
            if args.json:
                members = [{"user_id": ranked.id, **ranked.usage.as_dict()} for ranked in server.members]
                body = {"month": server.month, "timezone": "UTC", "guild_id": server.guild_id}
                print(json.dumps({**body, "server": server.total.as_dict(), "members": members}, indent=2))
                return EXIT_OK
            rows = usage_rows(server.month, "server", str(server.guild_id), server.total)
            rows += [usage_row(server.month, "member", str(ranked.id), ranked.usage.total) for ranked in server.members]
            print(format_usage_table(rows))
            return EXIT_OK
        everything = await bot.everything(operator, args.month)
        # The command line's own jobs are kept under their own prefix: shown apart, as `terminal`.
        terminal = await UsageService(UsageStore(redis, Keys(cli_prefix(settings)))).everything(operator, args.month)
    if args.json:
        servers = [{"guild_id": ranked.id, **ranked.usage.as_dict()} for ranked in everything.servers]
        body = {"month": everything.month, "timezone": "UTC", "total": everything.total.as_dict()}
        print(json.dumps({**body, "servers": servers, "terminal": terminal.total.as_dict()}, indent=2))
        return EXIT_OK
    month_name = everything.month
    rows = usage_rows(month_name, "total", "all", everything.total)
    rows += [usage_row(month_name, "server", str(ranked.id), ranked.usage.total) for ranked in everything.servers]
    rows.append(usage_row(month_name, "terminal", "cli", terminal.total.total))
    print(format_usage_table(rows))
    return EXIT_OK


async def check_discord(settings: Settings) -> bool:
    """Ask Discord who the token belongs to; print the bot's invite link (and, with user installs on, the link that
    installs it on a member's account)."""
    import aiohttp

    from cogs.common import DISCORD_API_BASE_URL, invite_url, user_install_url

    if settings.discord_token is None:
        return False
    base = settings.discord_api_base_url or DISCORD_API_BASE_URL
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
            async with http.get(f"{base}/users/@me") as response:
                if response.status == HTTPStatus.UNAUTHORIZED:
                    print(
                        "discord: FAILED: Discord rejected DISCORD_TOKEN (401 Unauthorized); copy the bot token again"
                    )
                    return False
                response.raise_for_status()
                user = await response.json()
            async with http.get(f"{base}/oauth2/applications/@me") as response:
                response.raise_for_status()
                application = await response.json()
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"discord: FAILED: Discord could not be asked: {type(exc).__name__}: {exc}")
        return False
    print(f"discord: ok (bot {user.get('username')}, application {application['id']})")
    print(f"invite: {invite_url(int(application['id']))}")
    if settings.user_installs:
        print(f"user install: {user_install_url(int(application['id']))}")
    return True


async def check(settings: Settings) -> bool:
    """Print one line per check; return whether all passed."""
    import aiohttp

    from runpod_bot.core import build_core, open_redis_for
    from runpod_bot.settings import REQUIRED_FOR_RUN, ConfigError
    from storage.connection import RedisUnavailableError, redact_url
    from storage.embedded import EmbeddedRedisError

    ok = True
    missing = settings.missing(REQUIRED_FOR_RUN)
    if missing:
        print(f"settings: FAILED: missing {', '.join(missing)} (see .env.example)")
        ok = False
    else:
        print("settings: ok")
        ok = await check_discord(settings)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    where = redact_url(redis_url) if redis_url else f"embedded server under {settings.data_dir}"
    try:
        async with open_redis_for(settings) as redis:
            info = await redis.info("server")
            version = info.get("valkey_version") or info.get("redis_version") or "unknown version"
            print(f"redis: ok ({where}, server {version})")
            if "RUNPOD_API_KEY" in missing:
                return False
            async with aiohttp.ClientSession() as http:
                try:
                    core = build_core(settings, redis, http)
                except ConfigError as exc:
                    print(f"models: FAILED: {exc}")
                    return False
                rows = await core.service.endpoint_health(core.catalog.models)
                for model, row in zip(core.catalog.models, rows, strict=True):
                    if row.unknown is not None:
                        print(f"runpod {model.name}: {row.unknown} (local worker server {model.local_worker_url})")
                    elif row.error is None and row.health is not None:
                        workers = row.health.workers
                        print(
                            f"runpod {model.name}: ok (endpoint {model.endpoint_id}; {workers.idle} idle, "
                            f"{workers.running} running, {row.health.jobs.in_queue} queued)"
                        )
                    else:
                        print(f"runpod {model.name}: FAILED: {row.error}")
                        ok = False
    except (RedisUnavailableError, EmbeddedRedisError) as exc:
        print(f"redis: FAILED: {exc}")
        return False
    return ok


def required_for(args: argparse.Namespace) -> Iterable[str]:
    from runpod_bot.settings import REQUIRED_FOR_RUNPOD

    if args.command in ("imagine", "health") and args.local:
        return ()
    if args.command in ("imagine", "health", "cancel"):
        # Satisfied by RUNPOD_LOCAL_WORKER_URL or a models file (see `Settings.missing`).
        return REQUIRED_FOR_RUNPOD
    return ()


class Stopped(Exception):
    """A stop signal ended the command (after everything it had opened was closed)."""

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(signum.name)
        self.signum = signum


async def stoppable(command: Awaitable[T]) -> T:
    """Run a command that SIGTERM and SIGHUP stop as Ctrl-C does: the task is cancelled, so every `async with`
    unwinds (the poller gives its lease back, the embedded Redis this command started is stopped)."""
    received = cancel_on_signals(CLI_STOP_SIGNALS)
    try:
        return await command
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not received or task is None:
            raise
        task.uncancel()
        raise Stopped(received[0]) from None


COMMANDS = {
    "imagine": imagine,
    "status": show_status,
    "cancel": cancel,
    "jobs": list_jobs,
    "health": health,
    "usage": show_usage,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command != "emulator" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "run":
        import bot

        return bot.main(Role(args.role))
    if args.command == "emulator":
        # Imported here: the bot itself never loads the emulator (nor Pillow's drawing code).
        from runpod_emulator.__main__ import main as emulator_main

        return emulator_main(extra, prog="runpod-bot emulator")
    from runpod_bot.logs import configure_logging
    from runpod_bot.settings import ConfigError, load_settings
    from storage.connection import RedisUnavailableError
    from storage.embedded import EmbeddedRedisError

    try:
        settings = load_settings(required_for(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    # A terminal wants warnings only; the redacting filter still guards them.
    configure_logging(
        max(logging.WARNING, logging.getLevelNamesMapping()[settings.log_level]),
        settings.secrets(),
        settings.log_format,
    )
    try:
        if args.command == "check":
            return EXIT_OK if asyncio.run(stoppable(check(settings))) else EXIT_FAILURE
        return asyncio.run(stoppable(COMMANDS[args.command](args, settings)))
    except Stopped as stop:
        print(f"stopped by {stop.signum.name}", file=sys.stderr)
        return 128 + stop.signum
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except (RedisUnavailableError, EmbeddedRedisError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
