"""The composition root: settings → logging → Redis → HTTP session → Bot → cogs.

Everything the bot needs is built here once and passed in; nothing else reads the settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
import discord
import redis.asyncio as aioredis
import yarl
from discord import app_commands
from discord.ext import commands
from pydantic import SecretStr

from cogs.common import Services, report_error
from cogs.delivery import DiscordNotifier
from cogs.jobs_ui import JobButton
from cogs.moderation import HealthRefresh
from jobs.metrics import Metrics
from jobs.notifier import Notifier
from jobs.policy import PollPolicy
from jobs.poller import Poller, PollerSettings
from jobs.presets import ModelCatalog, ModelsFileError, load_catalog
from jobs.prompt_filter import term_key
from jobs.service import JobService, RunSettings
from jobs.tasks import BackgroundTasks
from jobs.waiting import HealthCache
from jobs.webhooks import WebhookReceiver, WebhookSigner, derive_secret
from logs import configure_logging
from runpod_client import NO_RETRY, LocalWorkerClient, RetryPolicy, RunPodClient
from runpod_client.outputs import FetchPolicy
from settings import ConfigError, Settings, describe_problems, load_settings, log_level_number
from storage.connection import RedisUnavailableError, open_redis
from storage.embedded import EmbeddedRedisError
from storage.guilds import GuildSettings
from storage.store import JobStore, Limits, StoreConfig
from web import create_app, serve

log = logging.getLogger("runpod_bot")

# The cogs loaded at start-up, in order. A feature is enabled by listing its extension here.
EXTENSIONS: tuple[str, ...] = ("cogs.imagine", "cogs.moderation", "cogs.history")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

# How a process is told to stop: SIGTERM (a service manager, `docker stop`), SIGINT (Ctrl-C), SIGHUP (its terminal or
# SSH session went away). Each is an orderly stop that closes the bot, Redis and the embedded server.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class Core:
    """The Discord-free core, built once per process from the settings."""

    store: JobStore
    catalog: ModelCatalog
    clients: dict[str, RunPodClient]
    service: JobService
    policy: PollPolicy
    poller_settings: PollerSettings
    fetch_policy: FetchPolicy
    metrics: Metrics
    webhook_signer: WebhookSigner | None = None
    # The poller's own clients: no retries inside the client, so every /status attempt is charged to the shared
    # per-endpoint budget (a failed poll is retried by rescheduling instead).
    status_clients: dict[str, RunPodClient] | None = None

    def poller(self, notifier: Notifier, http: aiohttp.ClientSession, *, only: Collection[str] | None = None) -> Poller:
        """A poller of this core's jobs; with `only`, of just those jobs."""
        return Poller(
            self.store,
            self.clients,
            notifier,
            http=http,
            fetch_policy=self.fetch_policy,
            policy=self.policy,
            settings=self.poller_settings,
            status_clients=self.status_clients,
            metrics=self.metrics,
            catalog=self.catalog,
            only=only,
        )


def build_core(
    settings: Settings,
    redis: aioredis.Redis,
    http: aiohttp.ClientSession,
    *,
    prefix: str | None = None,
    catalog: ModelCatalog | None = None,
    metrics: Metrics | None = None,
) -> Core:
    """Store, model catalog, one RunPod client per endpoint, service and poll policy, from the settings."""
    metrics = metrics or Metrics()
    if catalog is None:
        catalog = load_models(settings)
    if settings.runpod_api_key is None and catalog.runpod_endpoint_ids:
        raise ConfigError(describe_problems(["RUNPOD_API_KEY"], []))
    api_key = settings.runpod_api_key.get_secret_value() if settings.runpod_api_key else ""
    store = JobStore(
        redis,
        StoreConfig(
            prefix=prefix or settings.redis_prefix,
            record_ttl_s=settings.job_record_ttl_days * 24 * 3600,
            submit_lease_ms=settings.submit_lease_ms,
        ),
    )
    clients = runpod_clients(settings, catalog, http, api_key, metrics)
    status_clients = runpod_clients(settings, catalog, http, api_key, metrics, retry=NO_RETRY)
    policy = PollPolicy(
        first_poll_ms=settings.poll_first_ms,
        queued_min_ms=settings.poll_queued_min_ms,
        queued_max_ms=settings.poll_queued_max_ms,
        running_min_ms=settings.poll_running_min_ms,
        running_max_ms=settings.poll_running_max_ms,
        jitter=settings.poll_jitter,
        delivery_lease_ms=settings.delivery_lease_ms,
        webhooks=settings.webhook_public_url is not None,
    )
    signer = None
    if settings.webhook_public_url is not None:
        if settings.webhook_secret is None and not api_key:
            # No key to derive the webhook tokens' secret from (only local worker servers, which send no webhook).
            raise ConfigError(
                describe_problems(["WEBHOOK_SECRET (WEBHOOK_PUBLIC_URL is set and no RUNPOD_API_KEY)"], [])
            )
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else derive_secret(api_key)
        signer = WebhookSigner(secret, settings.webhook_public_url)
    run_settings = RunSettings(
        execution_timeout_ms=settings.execution_timeout_s * 1000,
        max_queue_wait_ms=settings.max_queue_wait_s * 1000,
        limits=Limits(
            user_active=settings.user_active_jobs,
            guild_active=settings.guild_active_jobs,
            cooldown_ms=int(settings.user_cooldown_s * 1000),
        ),
        concurrency=settings.submit_concurrency,
        wait_s=settings.submit_wait_s,
    )
    service = JobService(
        store,
        clients,
        catalog,
        policy=policy,
        run_settings=run_settings,
        webhook_for=signer.url_for if signer else None,
        metrics=metrics,
    )
    poller_settings = PollerSettings(
        concurrency=settings.poll_concurrency,
        status_budget_per_s=settings.status_budget_per_s,
        claim_lease_ms=settings.poll_lease_ms,
    )
    fetch_policy = FetchPolicy(
        max_bytes=settings.image_max_mb * 1024 * 1024,
        allow_private=settings.allow_private_image_urls,
        allow_loopback=settings.allow_private_image_urls,
    )
    return Core(
        store, catalog, clients, service, policy, poller_settings, fetch_policy, metrics, signer, status_clients
    )


def runpod_clients(
    settings: Settings,
    catalog: ModelCatalog,
    http: aiohttp.ClientSession,
    api_key: str,
    metrics: Metrics,
    *,
    retry: RetryPolicy | None = None,
) -> dict[str, RunPodClient]:
    """One client per endpoint of the catalog: RunPod's API, or RunPod's local worker server for the models that
    name one (keyed by `ModelConfig.endpoint_id`, which stands for the server; it gets no API key)."""
    local = catalog.local_worker_urls
    clients: dict[str, RunPodClient] = {}
    for endpoint_id in catalog.endpoint_ids:
        if endpoint_id in local:
            clients[endpoint_id] = LocalWorkerClient(
                http,
                local[endpoint_id],
                key=endpoint_id,
                run_timeout_s=settings.execution_timeout_s,
                retry=retry,
                on_response=metrics.record_runpod_response,
            )
        else:
            clients[endpoint_id] = RunPodClient(
                http,
                endpoint_id,
                api_key,
                base_url=settings.runpod_base_url,
                retry=retry,
                on_response=metrics.record_runpod_response,
            )
    return clients


def load_models(settings: Settings) -> ModelCatalog:
    """The models of MODELS_FILE, or one model on RUNPOD_ENDPOINT_ID (or RUNPOD_LOCAL_WORKER_URL) when the file
    does not exist."""
    local_url = settings.runpod_local_worker_url
    if not settings.models_file.exists() and settings.runpod_endpoint_id is None and local_url is None:
        raise ConfigError(describe_problems(["RUNPOD_ENDPOINT_ID (or RUNPOD_LOCAL_WORKER_URL, or a MODELS_FILE)"], []))
    try:
        return load_catalog(settings.models_file, settings.runpod_endpoint_id or "", local_url)
    except ModelsFileError as exc:
        raise ConfigError(str(exc)) from None


class Role(StrEnum):
    """What a process does. Several poller processes may share one Redis; run one gateway (or one per shard set)."""

    ALL = "all"  # gateway, commands, poller and delivery: the single-machine default
    GATEWAY = "gateway"  # Discord gateway and commands only
    POLLER = "poller"  # polling and delivery through Discord's REST API; never connects to the gateway

    @property
    def connects(self) -> bool:
        return self is not Role.POLLER

    @property
    def polls(self) -> bool:
        return self is not Role.GATEWAY


@dataclass(frozen=True)
class BotDependencies:
    """What the bot and its cogs are given: built once by the composition root."""

    core: Core
    redis: aioredis.Redis
    http: aiohttp.ClientSession
    dev_guild_id: int | None = None
    moderator_role_id: int | None = None
    # BOT_OWNER_IDS; the application's owner (or its team's admins and developers) are operators as well.
    operator_ids: frozenset[int] = frozenset()
    card_edit_interval_s: float = 3.0
    global_denylist: tuple[str, ...] = ()
    role: Role = Role.ALL
    guild_ready_timeout_s: float = 2.0


class BotTree(app_commands.CommandTree["RunpodBot"]):
    """The command tree: one error handler for every command."""

    async def on_error(self, interaction: discord.Interaction[RunpodBot], error: app_commands.AppCommandError) -> None:
        await report_error(interaction, error)


class RunpodBot(commands.Bot):
    """The Discord bot: receives its dependencies, loads an explicit list of extensions, and runs the poller."""

    def __init__(self, deps: BotDependencies, *, extensions: Sequence[str] = EXTENSIONS, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=deps.guild_ready_timeout_s,
            tree_cls=BotTree,
            **options,
        )
        self.deps = deps
        core = deps.core
        health = HealthCache(core.clients)
        self.notifier = DiscordNotifier(self, core.store, health, deps.card_edit_interval_s, metrics=core.metrics)
        self.services = Services(
            service=core.service,
            store=core.store,
            catalog=core.catalog,
            clients=core.clients,
            guilds=GuildSettings(deps.redis, core.store.keys, term_key),
            health=health,
            notifier=self.notifier,
            moderator_role_id=deps.moderator_role_id,
            operator_ids=deps.operator_ids,
            global_denylist=deps.global_denylist,
        )
        self.poller: Poller | None = core.poller(self.notifier, deps.http) if deps.role.polls else None
        if self.poller is not None:
            # A fast model's /runsync reply that holds the result is delivered by this poller, at once.
            core.service.handoff.attach(self.poller)
        self._poller_task: asyncio.Task[None] | None = None
        self._tasks = BackgroundTasks("bot")
        self._extensions = tuple(extensions)

    async def setup_hook(self) -> None:
        if self.deps.role.connects:
            for extension in self._extensions:
                await self.load_extension(extension)
            self.add_dynamic_items(JobButton, HealthRefresh)
            await self.sync_commands()
        if self.poller is not None:
            self._poller_task = self._tasks.spawn(self.poller.run(), name="poller")

    async def sync_commands(self) -> None:
        """To DEV_GUILD_ID when set; globally only when the command tree changed (Discord limits creates a day)."""
        if self.deps.dev_guild_id is not None:
            guild = discord.Object(id=self.deps.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            return
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        key = self.deps.core.store.keys.command_tree_hash()
        stored = await self.deps.redis.get(key)
        if stored is not None and (stored.decode() if isinstance(stored, bytes) else stored) == digest:
            log.info("slash commands unchanged; not syncing")
            return
        await self.tree.sync()
        await self.deps.redis.set(key, digest)
        log.info("slash commands synced globally")

    async def close(self) -> None:
        """Stop polling first (releasing leases for other processes), then the card edits, then disconnect."""
        if self.poller is not None:
            await self.poller.stop()
        if self._poller_task is not None:
            await self._poller_task
        await self.notifier.close()
        await self._tasks.close()
        await super().close()

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (%s guilds)", self.user, len(self.guilds))

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """For /readyz: Redis answers, and (for roles that connect) the gateway is ready."""
        checks: dict[str, str] = {}
        try:
            await self.deps.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        if self.deps.role.connects:
            checks["discord"] = "ok" if self.is_ready() and not self.is_closed() else "not connected"
        return all(value == "ok" for value in checks.values()), checks


class ShardedRunpodBot(RunpodBot, commands.AutoShardedBot):
    """The same bot on discord.py's sharded client, for bots in thousands of guilds (SHARD_COUNT / SHARD_IDS).

    One process runs one poller however many shards it holds: polling is per process, not per shard.
    """


def make_bot(
    deps: BotDependencies, *, shard_count: int | None = None, shard_ids: Sequence[int] | None = None
) -> RunpodBot:
    """A plain bot, or a sharded one when shards are configured."""
    if shard_count is None and not shard_ids:
        return RunpodBot(deps)
    return ShardedRunpodBot(deps, shard_count=shard_count, shard_ids=list(shard_ids) if shard_ids else None)


def point_discord_at(api_base_url: str | None, gateway_url: str | None) -> None:
    """Send discord.py's REST calls and gateway connection to other addresses (a REST proxy, or a fake server)."""
    if api_base_url:
        discord.http.Route.BASE = api_base_url
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


async def run(settings: Settings, role: Role = Role.ALL) -> int:
    """Run the bot in its role until it is stopped; return the process exit status."""
    # A stop signal during start-up unwinds what is open so far (the embedded server too); `stop_on_signals` takes
    # over once the bot exists.
    cancel_on_signals()
    point_discord_at(settings.discord_api_base_url, settings.discord_gateway_url)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    async with (
        open_redis(
            redis_url,
            data_dir=settings.data_dir,
            server_bin=settings.redis_server_bin,
            max_connections=settings.redis_max_connections,
        ) as redis,
        aiohttp.ClientSession() as http,
    ):
        deps = BotDependencies(
            core=build_core(settings, redis, http),
            redis=redis,
            http=http,
            dev_guild_id=settings.dev_guild_id,
            moderator_role_id=settings.moderator_role_id,
            operator_ids=settings.operator_ids,
            card_edit_interval_s=settings.card_edit_interval_s,
            global_denylist=tuple(settings.denied_terms),
            role=role,
        )
        bot = make_bot(deps, shard_count=settings.shard_count, shard_ids=settings.shard_id_list)
        stopped = asyncio.Event()
        stop_on_signals(bot, stopped)
        log.info("starting in role %s", role.value)
        app = create_app(
            webhooks=webhook_receiver(deps.core, bot.poller),
            readiness=bot.readiness,
            metrics=deps.core.metrics,
            store=deps.core.store,
        )
        async with serve(app, host=settings.http_host, port=settings.http_port), bot:
            try:
                token = require_secret(settings.discord_token, "DISCORD_TOKEN")
                if role.connects:
                    await bot.start(token)
                else:
                    # A poller only needs REST: log in (which runs setup_hook and starts polling) and wait.
                    await bot.login(token)
                    await stopped.wait()
            except discord.LoginFailure:
                log.error("Discord rejected DISCORD_TOKEN (401 Unauthorized): copy the bot token again.")
                return EXIT_FAILURE
    return EXIT_OK


def webhook_receiver(core: Core, poller: Poller | None) -> WebhookReceiver | None:
    """With webhooks on, the receiver finishes jobs in this process's poller, or makes them due for others'."""
    if core.webhook_signer is None:
        return None
    return WebhookReceiver(core.store, core.webhook_signer, finisher=poller)


def require_secret(value: SecretStr | None, name: str) -> str:
    if value is None:
        raise ConfigError(describe_problems([name], []))
    return value.get_secret_value()


def cancel_on_signals(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> list[signal.Signals]:
    """Make the first of `signals` cancel the current task, so every `async with` it is in unwinds; returns the list
    that records the signal received."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[signal.Signals] = []

    def cancel(signum: signal.Signals) -> None:
        if not received and task is not None:
            received.append(signum)
            task.cancel()

    for signum in signals:
        loop.add_signal_handler(signum, cancel, signum)
    return received


def stop_on_signals(bot: RunpodBot, stopped: asyncio.Event) -> None:
    """Close the bot cleanly on a stop signal (releasing job leases), then let Redis and HTTP close."""
    loop = asyncio.get_running_loop()
    # Referenced by the signal handlers, which live as long as the loop.
    tasks = BackgroundTasks("stop-signals")

    async def shut_down() -> None:
        log.info("stopping: releasing jobs for other processes")
        try:
            await bot.close()
        finally:
            stopped.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, lambda: tasks.spawn(shut_down(), name="shutdown"))


def main(role: Role = Role.ALL) -> int:
    """Entry point of `python bot.py` and `runpod-bot run [--role ROLE]`."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(log_level_number(settings), settings.secrets(), settings.log_format)
    try:
        return asyncio.run(run(settings, role))
    except (RedisUnavailableError, EmbeddedRedisError) as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except ConfigError as exc:
        # Found once the models file is read (a model that needs RUNPOD_API_KEY, a bad entry).
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except asyncio.CancelledError:
        log.info("stopped during start-up")
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
