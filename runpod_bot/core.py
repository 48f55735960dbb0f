"""The composition root, free of Discord: settings → Redis, HTTP session → store, catalog, RunPod clients, service,
poll policy, poller settings, metrics and webhook signer, and the owner of every background task.

The bot (`bot.py`), the command line (`cli.py`), the HTTP app and the benchmarks all get their core from here, and
this is the one module besides them that reads the settings: `build_core` turns the settings into `CoreOptions` and
`assemble_core` builds the core from those (a benchmark gives its own options, without settings). It never imports
discord.py, so the command line's `status`, `jobs`, `cancel` and `health` start without loading it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from jobs.tasks import BackgroundTasks

# Each function imports what it builds, so a command loads only its part of the core: `--help` none of it, `status`
# and `jobs` the store and Redis (no HTTP client, poller or prompt filter).
if TYPE_CHECKING:
    from random import Random

    import aiohttp
    import redis.asyncio as aioredis

    from jobs.metrics import Metrics
    from jobs.notifier import Notifier
    from jobs.policy import PollPolicy
    from jobs.poller import Poller, PollerSettings
    from jobs.presets import ModelCatalog
    from jobs.prompt_filter import PromptRules
    from jobs.service import JobService, RunSettings
    from jobs.webhooks import WebhookReceiver, WebhookSigner
    from runpod_bot.settings import Settings
    from runpod_client import RetryPolicy, RunPodClient
    from runpod_client.outputs import FetchPolicy
    from storage.store import JobStore, StoreConfig

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

# How a process is told to stop: SIGTERM (a service manager, `docker stop`), SIGINT (Ctrl-C), SIGHUP (its terminal or
# SSH session went away). Each is an orderly stop that closes the bot, Redis and the embedded server.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

# Jobs started from a terminal live under their own key prefix, so a bot on the same Redis never posts them to
# Discord and the terminal never saves the bot's images.
CLI_PREFIX_SUFFIX = "-cli"


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
class Core:
    """The Discord-free core, built once per process from the settings, and the owner of its background tasks."""

    redis: aioredis.Redis
    http: aiohttp.ClientSession
    store: JobStore
    catalog: ModelCatalog
    clients: dict[str, RunPodClient]
    service: JobService
    policy: PollPolicy
    poller_settings: PollerSettings
    fetch_policy: FetchPolicy
    metrics: Metrics
    # The deny-lists the service checks at submit; the bot's /denylist edits the servers' lists through it.
    prompt_rules: PromptRules
    webhook_signer: WebhookSigner | None = None
    # The poller's own clients: no retries inside the client, so every /status attempt is charged to the shared
    # per-endpoint budget (a failed poll is retried by rescheduling instead).
    status_clients: dict[str, RunPodClient] | None = None
    tasks: BackgroundTasks = field(default_factory=lambda: BackgroundTasks("core"))

    def poller(self, notifier: Notifier, *, only: Collection[str] | None = None, rng: Random | None = None) -> Poller:
        """A poller of this core's jobs; with `only`, of just those jobs."""
        from jobs.poller import Poller

        return Poller(
            self.store,
            self.clients,
            notifier,
            http=self.http,
            fetch_policy=self.fetch_policy,
            policy=self.policy,
            settings=self.poller_settings,
            status_clients=self.status_clients,
            metrics=self.metrics,
            catalog=self.catalog,
            only=only,
            rng=rng,
        )

    def start_polling(self, poller: Poller) -> asyncio.Task[None]:
        """Run `poller` as one of this core's background tasks; `stop_polling` ends it in order."""
        return self.tasks.spawn(poller.run(), name="poller")

    async def stop_polling(self, poller: Poller, task: asyncio.Task[None]) -> None:
        """Stop claiming, finish or release what the poller holds, and wait for its task to end."""
        await poller.stop()
        await task

    def webhook_receiver(self, finisher: Poller | None) -> WebhookReceiver | None:
        """With webhooks on, the receiver finishes jobs in `finisher` (this process's poller), or makes them due."""
        if self.webhook_signer is None:
            return None
        from jobs.webhooks import WebhookReceiver

        return WebhookReceiver(self.store, self.webhook_signer, finisher=finisher)

    async def close(self) -> None:
        """End whatever background task is still running (each owner stops its own first, in order)."""
        await self.tasks.close()


@dataclass(frozen=True)
class CoreOptions:
    """Everything the core is built with besides Redis, the HTTP session and the model catalog: what `build_core`
    reads from the settings, or what a benchmark sets itself. Each one left None is its class's default, filled in
    by `assemble_core`: a default here would import the poller, the HTTP client and aiohttp with this module, which
    the command line's `--help`, `status` and `jobs` do not load."""

    store: StoreConfig | None = None
    api_key: str = ""
    # None: RunPod's API (`runpod_client.DEFAULT_BASE_URL`).
    runpod_base_url: str | None = None
    policy: PollPolicy | None = None
    run_settings: RunSettings | None = None
    poller_settings: PollerSettings | None = None
    fetch_policy: FetchPolicy | None = None
    # The operator's deny-list, refused everywhere (each server's own list is read from Redis).
    denied_terms: tuple[str, ...] = ()
    # With a signer every job carries a webhook URL and polling is only the safety net (`PollPolicy.webhooks`).
    webhook_signer: WebhookSigner | None = None


def store_config(settings: Settings, prefix: str | None = None) -> StoreConfig:
    """The store's numbers from the settings, under `prefix` (default REDIS_PREFIX)."""
    from storage.store import StoreConfig

    return StoreConfig(
        prefix=prefix or settings.redis_prefix,
        record_ttl_s=settings.job_record_ttl_days * 24 * 3600,
        submit_lease_ms=settings.submit_lease_ms,
    )


def cli_prefix(settings: Settings) -> str:
    """The key prefix of jobs started from the command line."""
    return settings.redis_prefix + CLI_PREFIX_SUFFIX


def job_stores(settings: Settings, redis: aioredis.Redis) -> list[JobStore]:
    """The bot's jobs and the command line's jobs."""
    from storage.store import JobStore

    return [JobStore(redis, store_config(settings, prefix)) for prefix in (settings.redis_prefix, cli_prefix(settings))]


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
    from runpod_bot.settings import ConfigError, describe_problems

    if catalog is None:
        catalog = load_models(settings)
    if settings.runpod_api_key is None and catalog.runpod_endpoint_ids:
        raise ConfigError(describe_problems(["RUNPOD_API_KEY"], []))
    api_key = settings.runpod_api_key.get_secret_value() if settings.runpod_api_key else ""
    return assemble_core(redis, http, catalog, core_options(settings, api_key, prefix), metrics=metrics)


def core_options(settings: Settings, api_key: str, prefix: str | None = None) -> CoreOptions:
    """The core's options from the settings, its store under `prefix` (default REDIS_PREFIX)."""
    from jobs.policy import PollPolicy
    from jobs.poller import PollerSettings
    from jobs.service import RunSettings
    from jobs.webhooks import WebhookSigner, derive_secret
    from runpod_bot.settings import ConfigError, describe_problems
    from runpod_client.outputs import FetchPolicy
    from storage.store import Limits

    signer = None
    if settings.webhook_public_url is not None:
        if settings.webhook_secret is None and not api_key:
            # No key to derive the webhook tokens' secret from (only local worker servers, which send no webhook).
            raise ConfigError(
                describe_problems(["WEBHOOK_SECRET (WEBHOOK_PUBLIC_URL is set and no RUNPOD_API_KEY)"], [])
            )
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else derive_secret(api_key)
        signer = WebhookSigner(secret, settings.webhook_public_url)
    return CoreOptions(
        store=store_config(settings, prefix),
        api_key=api_key,
        runpod_base_url=settings.runpod_base_url,
        policy=PollPolicy(
            first_poll_ms=settings.poll_first_ms,
            queued_min_ms=settings.poll_queued_min_ms,
            queued_max_ms=settings.poll_queued_max_ms,
            running_min_ms=settings.poll_running_min_ms,
            running_max_ms=settings.poll_running_max_ms,
            jitter=settings.poll_jitter,
            delivery_lease_ms=settings.delivery_lease_ms,
        ),
        run_settings=RunSettings(
            execution_timeout_ms=settings.execution_timeout_s * 1000,
            max_queue_wait_ms=settings.max_queue_wait_s * 1000,
            limits=Limits(
                user_active=settings.user_active_jobs,
                guild_active=settings.guild_active_jobs,
                cooldown_ms=int(settings.user_cooldown_s * 1000),
                member_daily_gpu_ms=settings.member_daily_gpu_s * 1000,
                guild_monthly_gpu_ms=settings.server_monthly_gpu_s * 1000,
            ),
            concurrency=settings.submit_concurrency,
            wait_s=settings.submit_wait_s,
        ),
        poller_settings=PollerSettings(
            concurrency=settings.poll_concurrency,
            status_budget_per_s=settings.status_budget_per_s,
            claim_lease_ms=settings.poll_lease_ms,
        ),
        fetch_policy=FetchPolicy(
            max_bytes=settings.image_max_mb * 1024 * 1024,
            allow_private=settings.allow_private_image_urls,
            allow_loopback=settings.allow_private_image_urls,
        ),
        denied_terms=tuple(settings.denied_terms),
        webhook_signer=signer,
    )


def assemble_core(
    redis: aioredis.Redis,
    http: aiohttp.ClientSession,
    catalog: ModelCatalog,
    options: CoreOptions,
    *,
    metrics: Metrics | None = None,
) -> Core:
    """The core from its options, without settings: what `build_core` builds, and what the benchmarks measure."""
    from jobs.metrics import Metrics
    from jobs.policy import PollPolicy
    from jobs.poller import PollerSettings
    from jobs.prompt_filter import PromptRules, term_key
    from jobs.server_settings import ServerSettingsService
    from jobs.service import JobService, RunSettings
    from jobs.source_image import source_preparer
    from runpod_client import DEFAULT_BASE_URL, NO_RETRY
    from runpod_client.outputs import FetchPolicy
    from storage.guilds import GuildSettings
    from storage.server_settings import ServerSettingsStore
    from storage.store import JobStore, StoreConfig

    metrics = metrics or Metrics()
    store = JobStore(redis, options.store or StoreConfig())
    run_settings = options.run_settings or RunSettings()
    base_url = options.runpod_base_url or DEFAULT_BASE_URL
    # A local worker server's /status runs the job: it may take as long as a job may run.
    run_timeout_s = run_settings.execution_timeout_ms // 1000
    clients = runpod_clients(catalog, http, options.api_key, metrics, base_url, run_timeout_s)
    status_clients = runpod_clients(catalog, http, options.api_key, metrics, base_url, run_timeout_s, retry=NO_RETRY)
    # Polling is the safety net exactly when RunPod is given webhook URLs.
    policy = replace(options.policy or PollPolicy(), webhooks=options.webhook_signer is not None)
    # The operator's PROMPT_DENYLIST everywhere, and each server's /denylist in that server.
    prompt_rules = PromptRules(GuildSettings(redis, store.keys, term_key), options.denied_terms)
    signer = options.webhook_signer
    fetch_policy = options.fetch_policy or FetchPolicy()
    service = JobService(
        store,
        clients,
        catalog,
        policy=policy,
        run_settings=run_settings,
        webhook_for=signer.url_for if signer else None,
        metrics=metrics,
        prompt_rules=prompt_rules,
        # A source image (img2img) is fetched under the same address rules as worker outputs.
        prepare_source=source_preparer(http, fetch_policy),
        # Each server's /settings, read from Redis at every submit, never looser than the operator's limits.
        server_settings=ServerSettingsService(
            ServerSettingsStore(redis, store.keys), catalog, run_settings.limits, prompt_rules=prompt_rules
        ),
    )
    return Core(
        redis=redis,
        http=http,
        store=store,
        catalog=catalog,
        clients=clients,
        service=service,
        policy=policy,
        poller_settings=options.poller_settings or PollerSettings(),
        fetch_policy=fetch_policy,
        metrics=metrics,
        prompt_rules=prompt_rules,
        webhook_signer=signer,
        status_clients=status_clients,
    )


def runpod_clients(
    catalog: ModelCatalog,
    http: aiohttp.ClientSession,
    api_key: str,
    metrics: Metrics,
    base_url: str,
    run_timeout_s: float,
    *,
    retry: RetryPolicy | None = None,
) -> dict[str, RunPodClient]:
    """One client per endpoint of the catalog: RunPod's API at `base_url`, or RunPod's local worker server for the
    models that name one (keyed by `ModelConfig.endpoint_id`, which stands for the server; it gets no API key, and a
    job there may run `run_timeout_s`)."""
    from runpod_client import LocalWorkerClient, RunPodClient

    local = catalog.local_worker_urls
    clients: dict[str, RunPodClient] = {}
    for endpoint_id in catalog.endpoint_ids:
        if endpoint_id in local:
            clients[endpoint_id] = LocalWorkerClient(
                http,
                local[endpoint_id],
                key=endpoint_id,
                run_timeout_s=run_timeout_s,
                retry=retry,
                on_response=metrics.record_runpod_response,
            )
        else:
            clients[endpoint_id] = RunPodClient(
                http,
                endpoint_id,
                api_key,
                base_url=base_url,
                retry=retry,
                on_response=metrics.record_runpod_response,
            )
    return clients


def load_models(settings: Settings) -> ModelCatalog:
    """The models of MODELS_FILE, or one model on RUNPOD_ENDPOINT_ID (or RUNPOD_LOCAL_WORKER_URL) when the file
    does not exist."""
    from jobs.presets import ModelsFileError, load_catalog
    from runpod_bot.settings import ConfigError, describe_problems

    # The same rule, and the same words, as the settings' own check of what a command needs.
    missing = settings.missing(["runpod_endpoint_id"])
    if missing:
        raise ConfigError(describe_problems(missing, []))
    try:
        return load_catalog(settings.models_file, settings.runpod_endpoint_id or "", settings.runpod_local_worker_url)
    except ModelsFileError as exc:
        raise ConfigError(str(exc)) from None


def open_redis_for(settings: Settings) -> AbstractAsyncContextManager[aioredis.Redis]:
    """Redis at REDIS_URL, or the embedded server (stopped when the block ends)."""
    from storage.connection import open_redis

    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    return open_redis(
        redis_url,
        data_dir=settings.data_dir,
        server_bin=settings.redis_server_bin,
        max_connections=settings.redis_max_connections,
    )


@asynccontextmanager
async def open_core(
    settings: Settings, *, prefix: str | None = None, catalog: ModelCatalog | None = None
) -> AsyncIterator[Core]:
    """Redis, one HTTP session for the whole process, and the core built on them; on exit, in reverse order: the
    core's remaining background tasks end, then the HTTP session and Redis (and the embedded server) close."""
    import aiohttp

    async with open_redis_for(settings) as redis, aiohttp.ClientSession() as http:
        core = build_core(settings, redis, http, prefix=prefix, catalog=catalog)
        try:
            yield core
        finally:
            await core.close()


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
