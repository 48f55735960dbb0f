"""Helpers for tests that run a discord.py client against the fake: start it, wait for READY, stop it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import discord
import discord.gateway
import discord.http

log = logging.getLogger(__name__)


@contextlib.contextmanager
def restored_discord_endpoints() -> Iterator[None]:
    """Put discord.py's REST base and gateway address back afterwards: both are class attributes, shared by all."""
    saved_base = discord.http.Route.BASE
    saved_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        yield
    finally:
        discord.http.Route.BASE = saved_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved_gateway


@contextlib.asynccontextmanager
async def running_client(client: discord.Client, token: str, *, within: float = 10.0) -> AsyncIterator[None]:
    """Log `client` in, connect it and wait until it is ready; close it on exit.

    The client must already be pointed at the fake (`bot.point_discord_at`). A failure to connect is raised here
    rather than left in a background task.
    """
    await client.login(token)
    connect = asyncio.create_task(client.connect(), name="test-discord-client")
    ready = asyncio.create_task(client.wait_until_ready(), name="test-discord-ready")
    try:
        done, _ = await asyncio.wait({connect, ready}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if connect in done:
            connect.result()
            raise RuntimeError("the discord.py client stopped before it was ready")
        if ready not in done:
            raise TimeoutError(f"the discord.py client was not ready within {within}s")
        yield
    finally:
        ready.cancel()
        await client.close()
        try:
            await asyncio.wait_for(connect, timeout=within)
        except (discord.ConnectionClosed, OSError, TimeoutError) as exc:
            log.info("discord.py client ended with %r", exc)
