"""Fixtures for the fake Discord's own suite: every test runs against the in-process fake and the standalone one."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from PIL import Image

from bot import point_discord_at
from tests.e2e.fakes.tinybot import Outcome, Probe, TinyBot
from tests.fakes.discord import (
    FakeDiscord,
    FakeDiscordControl,
    FakeDiscordDriver,
    FakeDiscordProcess,
    restored_discord_endpoints,
    running_client,
)
from tests.fakes.discord.views import InfoView, InteractionView


@dataclass(frozen=True)
class Place:
    """Where the tests happen: a guild, its #general channel and a member called alice."""

    info: InfoView
    guild_id: int
    channel_id: int
    member_id: int


@pytest.fixture(params=["in_process", "standalone"])
async def driver(
    request: pytest.FixtureRequest, fake_discord_process: FakeDiscordProcess
) -> AsyncIterator[FakeDiscordDriver]:
    """The fake, in-process or as a separate process driven only through its control API."""
    with restored_discord_endpoints():
        if request.param == "in_process":
            async with FakeDiscord() as fake:
                yield fake
        else:
            async with FakeDiscordControl(fake_discord_process.control_url) as control:
                await control.reset()
                yield control


@pytest.fixture
async def place(driver: FakeDiscordDriver) -> Place:
    info = await driver.info()
    guild = await driver.create_guild("Test Guild")
    channel = await driver.create_channel(guild["id"], "general")
    alice = await driver.create_member(guild["id"], "alice")
    point_discord_at(info["api_base_url"], info["gateway_url"])
    return Place(info=info, guild_id=guild["id"], channel_id=channel["id"], member_id=alice["user_id"])


@pytest.fixture
async def tiny(place: Place) -> AsyncIterator[TinyBot]:
    """The tiny bot, logged in and ready, with its commands synced."""
    bot = TinyBot()
    async with running_client(bot, place.info["bot_token"]):
        yield bot


async def run_probe(
    driver: FakeDiscordDriver, place: Place, bot: TinyBot, probe: Probe
) -> tuple[InteractionView, Outcome]:
    """Invoke /probe as alice with `probe` installed; return the interaction and what the probe did."""
    bot.probes.probe = probe
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "probe")
    return interaction, await bot.probes.next()


def png(color: str, size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()
