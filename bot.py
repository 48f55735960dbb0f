"""The composition root: settings → logging → Redis → HTTP session → Bot → cogs.

Everything the bot needs is built here once and passed in; nothing else reads the settings.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import discord
import redis.asyncio as aioredis
import yarl
from discord.ext import commands

from jobs.tasks import spawn
from logs import configure_logging
from settings import ConfigError, Settings, load_settings, log_level_number
from storage.connection import RedisUnavailableError, open_redis
from storage.embedded import EmbeddedRedisError

log = logging.getLogger("runpod_bot")

# The cogs loaded at start-up, in order. A feature is enabled by listing its extension here.
EXTENSIONS: tuple[str, ...] = ()

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


@dataclass(frozen=True)
class BotDependencies:
    """What the cogs are given: built once by the composition root."""

    redis: aioredis.Redis
    http: aiohttp.ClientSession
    dev_guild_id: int | None = None


class RunpodBot(commands.Bot):
    """The Discord bot: receives its dependencies and loads an explicit list of extensions."""

    def __init__(self, deps: BotDependencies, *, extensions: Sequence[str] = EXTENSIONS) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.deps = deps
        self._extensions = tuple(extensions)

    async def setup_hook(self) -> None:
        for extension in self._extensions:
            await self.load_extension(extension)
        if self.deps.dev_guild_id is not None:
            guild = discord.Object(id=self.deps.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (%s guilds)", self.user, len(self.guilds))


def point_discord_at(api_base_url: str | None, gateway_url: str | None) -> None:
    """Send discord.py's REST calls and gateway connection to other addresses (a REST proxy, or a fake server)."""
    if api_base_url:
        discord.http.Route.BASE = api_base_url
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


async def run(settings: Settings) -> int:
    """Run the bot until it is stopped; return the process exit status."""
    point_discord_at(settings.discord_api_base_url, settings.discord_gateway_url)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    async with (
        open_redis(redis_url, data_dir=settings.data_dir, server_bin=settings.redis_server_bin) as redis,
        aiohttp.ClientSession() as http,
    ):
        deps = BotDependencies(redis=redis, http=http, dev_guild_id=settings.dev_guild_id)
        bot = RunpodBot(deps)
        stop_on_signals(bot)
        async with bot:
            try:
                await bot.start(settings.discord_token.get_secret_value())
            except discord.LoginFailure:
                log.error("Discord rejected DISCORD_TOKEN (401 Unauthorized): copy the bot token again.")
                return EXIT_FAILURE
    return EXIT_OK


def stop_on_signals(bot: RunpodBot) -> None:
    """Close the bot cleanly on SIGTERM and SIGINT, so Redis and the HTTP session are closed too."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: spawn(bot.close(), name="close-bot"))


def main() -> int:
    """Entry point of `python bot.py` and `runpod-bot run`."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(log_level_number(settings), settings.secrets())
    try:
        return asyncio.run(run(settings))
    except (RedisUnavailableError, EmbeddedRedisError) as exc:
        log.error("%s", exc)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
