"""Pytest fixtures for the fake Discord: in-process on a free loopback port, or as a standalone process.

Both restore discord.py's REST base and gateway address after the test, so a test may point the library at the
fake with `bot.point_discord_at(fake.api_base_url, fake.gateway_url)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.discord import FakeDiscord, FakeDiscordControl, FakeDiscordProcess, restored_discord_endpoints


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A fresh in-process fake Discord for this test (`.api_base_url`, `.gateway_url`, `.token`, `.world`)."""
    with restored_discord_endpoints():
        async with FakeDiscord() as fake:
            yield fake


@pytest.fixture(scope="session")
def fake_discord_process() -> Iterator[FakeDiscordProcess]:
    """One standalone `python -m tests.fakes.discord` process for the whole session."""
    with FakeDiscordProcess() as process:
        yield process


@pytest.fixture
async def fake_discord_control(fake_discord_process: FakeDiscordProcess) -> AsyncIterator[FakeDiscordControl]:
    """A control client for the standalone fake, which is reset (empty world, no sessions) before the test."""
    with restored_discord_endpoints():
        async with FakeDiscordControl(fake_discord_process.control_url) as control:
            await control.reset()
            yield control
