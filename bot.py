"""The Discord entry point: settings → logging → the core (the composition root, `runpod_bot/core.py`) → Bot → cogs.

Everything the bot needs is built once and passed in; only this module, `runpod_bot/core.py` and `runpod_bot/cli.py`
read the settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import redis.asyncio as aioredis
import yarl
from discord import app_commands
from discord.ext import commands
from pydantic import SecretStr

from cogs.common import SUBMIT_DRAIN_S, Services, bot_in_channel, report_error
from cogs.delivery import DiscordNotifier
from cogs.i18n import CatalogTranslator, catalog_digest, load_catalogs, render, use_member_locale
from cogs.pacing import Budget, DiscordBudget
from jobs.poller import Poller
from jobs.tasks import BackgroundTasks
from jobs.text import N_
from jobs.waiting import HealthCache
from runpod_bot.core import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    STOP_SIGNALS,
    Core,
    Role,
    build_core,
    cancel_on_signals,
    load_models,
    open_core,
)
from runpod_bot.logs import configure_logging
from runpod_bot.settings import (
    DEFAULT_CARD_EDIT_INTERVAL_S,
    DEFAULT_CHANNEL_REQUESTS,
    DEFAULT_CHANNEL_WINDOW_S,
    DEFAULT_REQUESTS_PER_S,
    ConfigError,
    Settings,
    describe_problems,
    load_settings,
    log_level_number,
)
from runpod_bot.web import create_app, serve
from storage.connection import RedisUnavailableError
from storage.embedded import EmbeddedRedisError

# Built by the Discord-free composition root (`runpod_bot/core.py`); named here too for callers that know only the bot.
__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXTENSIONS",
    "BotDependencies",
    "Core",
    "Role",
    "RunpodBot",
    "build_core",
    "load_models",
    "main",
    "run",
]

log = logging.getLogger("runpod_bot")

# The cogs loaded at start-up, in order. A feature is enabled by listing its extension here.
EXTENSIONS: tuple[str, ...] = (
    "cogs.imagine",
    "cogs.variations",
    "cogs.moderation",
    "cogs.history",
    "cogs.settings",
    "cogs.usage",
)


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
    card_edit_interval_s: float = DEFAULT_CARD_EDIT_INTERVAL_S
    # What the notifier may ask of Discord (its pacer's budgets).
    discord_budget: DiscordBudget = field(
        default_factory=lambda: DiscordBudget(
            channel=Budget(DEFAULT_CHANNEL_REQUESTS, DEFAULT_CHANNEL_WINDOW_S),
            overall=Budget(DEFAULT_REQUESTS_PER_S, 1.0),
        )
    )
    role: Role = Role.ALL
    guild_ready_timeout_s: float = 2.0
    # USER_INSTALLS: members may install the app on their account; off, the commands reach server installs only.
    user_installs: bool = True


# Said to a member whose own install of the app reached the bot after the operator turned user installs off (a
# command list their Discord client had not refreshed yet).
USER_INSTALLS_OFF = N_(
    "This bot's operator has turned off using it from your own account. Use it in a server that added the bot, "
    "or in a direct message with the bot."
)


class BotTree(app_commands.CommandTree["RunpodBot"]):
    """The command tree: one error handler for every command, and every command answers in its member's language."""

    async def on_error(self, interaction: discord.Interaction[RunpodBot], error: app_commands.AppCommandError) -> None:
        await report_error(interaction, error)

    async def interaction_check(self, interaction: discord.Interaction[RunpodBot], /) -> bool:
        """With user installs off, a command reaching the bot only through a member's own install (where the bot is
        not in the channel) is refused in words: Discord may still send one until the member's client refreshes.
        Every command answers in its member's language."""
        use_member_locale(interaction)
        if interaction.client.deps.user_installs or bot_in_channel(interaction):
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        else:
            await interaction.response.send_message(render(USER_INSTALLS_OFF), ephemeral=True)
        return False


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
        self.notifier = DiscordNotifier(
            self, core.service, health, deps.card_edit_interval_s, metrics=core.metrics, budget=deps.discord_budget
        )
        # What each extension's setup() hands to its cogs (`cogs.common.services_of`).
        self.services = Services(
            service=core.service,
            catalog=core.catalog,
            health=health,
            notifier=self.notifier,
            prompt_rules=core.prompt_rules,
            moderator_role_id=deps.moderator_role_id,
            operator_ids=deps.operator_ids,
        )
        self.poller: Poller | None = core.poller(self.notifier) if deps.role.polls else None
        if self.poller is not None:
            # A fast model's /runsync reply that holds the result is delivered by this poller, at once.
            core.service.handoff.attach(self.poller)
        # Run by the core, which owns every background task; stopped first in `close`.
        self._poller_task: asyncio.Task[None] | None = None
        self._extensions = tuple(extensions)

    async def setup_hook(self) -> None:
        # Every process renders messages (a poller-only one renders cards and results): catalogs compiled up front.
        await asyncio.to_thread(load_catalogs)
        if self.deps.role.connects:
            # The commands' descriptions and choices in every shipped language (`description_localizations`).
            await self.tree.set_translator(CatalogTranslator())
            # Each extension registers its own buttons (`DynamicItem`s) as its cogs load.
            for extension in self._extensions:
                await self.load_extension(extension)
            if not self.deps.user_installs:
                server_installs_only(self.tree)
            await self.sync_commands()
        if self.poller is not None:
            self._poller_task = self.deps.core.start_polling(self.poller)

    async def sync_commands(self) -> None:
        """To DEV_GUILD_ID when set; globally only when the command tree changed (Discord limits creates a day)."""
        if self.deps.dev_guild_id is not None:
            guild = discord.Object(id=self.deps.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            return
        payload: list[Any] = [command.to_dict(self.tree) for command in self.tree.get_commands()]
        # A changed translation of a description changes what is synced, though not the commands themselves.
        payload.append(await asyncio.to_thread(catalog_digest))
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
        """Refuse new submits; stop polling (releasing leases for other processes) while the submits in flight
        finish; then stop the card edits and disconnect."""
        in_flight = self.services.in_flight
        in_flight.stop_accepting()
        # Both before discord.py unloads the cogs: a submit in flight still posts its card and answers its member.
        await asyncio.gather(self._stop_polling(), in_flight.drain(SUBMIT_DRAIN_S))
        await self.notifier.close()
        await super().close()

    async def _stop_polling(self) -> None:
        if self.poller is not None and self._poller_task is not None:
            await self.deps.core.stop_polling(self.poller, self._poller_task)
        elif self.poller is not None:
            await self.poller.stop()

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


def server_installs_only(tree: app_commands.CommandTree[Any]) -> None:
    """USER_INSTALLS=false: every command reaches server installs only (and so never a group DM or a DM between
    others, which only a user install reaches); each command's own choice of where it works is kept otherwise."""
    for command in tree.get_commands():
        command.allowed_installs = app_commands.AppInstallationType(guild=True, user=False)
        contexts = command.allowed_contexts
        if contexts is not None:
            command.allowed_contexts = app_commands.AppCommandContext(
                guild=contexts.guild, dm_channel=contexts.dm_channel, private_channel=False
            )


def discord_budget(settings: Settings) -> DiscordBudget:
    """The notifier's budgets from the settings (DISCORD_CHANNEL_REQUESTS, DISCORD_CHANNEL_WINDOW_S,
    DISCORD_REQUESTS_PER_S)."""
    return DiscordBudget(
        channel=Budget(settings.discord_channel_requests, settings.discord_channel_window_s),
        overall=Budget(settings.discord_requests_per_s, 1.0),
    )


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
    async with open_core(settings) as core:
        deps = BotDependencies(
            core=core,
            redis=core.redis,
            http=core.http,
            dev_guild_id=settings.dev_guild_id,
            moderator_role_id=settings.moderator_role_id,
            operator_ids=settings.operator_ids,
            card_edit_interval_s=settings.card_edit_interval_s,
            user_installs=settings.user_installs,
            discord_budget=discord_budget(settings),
            role=role,
        )
        bot = make_bot(deps, shard_count=settings.shard_count, shard_ids=settings.shard_id_list)
        stopped = asyncio.Event()
        stop_on_signals(bot, stopped)
        log.info("starting in role %s", role.value)
        app = create_app(
            webhooks=core.webhook_receiver(bot.poller),
            readiness=bot.readiness,
            metrics=core.metrics,
            store=core.store,
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


def require_secret(value: SecretStr | None, name: str) -> str:
    if value is None:
        raise ConfigError(describe_problems([name], []))
    return value.get_secret_value()


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
