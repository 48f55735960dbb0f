"""The control API offers what the in-process fake offers, and the fake survives a bot process that is killed."""

from __future__ import annotations

import asyncio
import inspect
import sys

from tests.e2e.fakes.conftest import Place
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import FakeDiscord, FakeDiscordControl, FakeDiscordDriver, running_client
from tests.fakes.discord.control import ROUTES
from tests.fakes.discord.process import REPO_ROOT


def test_every_control_method_has_a_route() -> None:
    """Each primitive of the driver is reachable over HTTP (attachments are fetched at their own URLs)."""
    primitives = set(FakeDiscordDriver.__abstractmethods__)
    routed = {name for _, _, name in ROUTES}
    assert routed <= primitives
    assert primitives - routed == {"attachment_bytes"}


def test_in_process_fake_and_control_client_have_the_same_signatures() -> None:
    """A test written against one mode runs unchanged against the other."""
    differing = [
        name
        for name in sorted(FakeDiscordDriver.__abstractmethods__)
        if inspect.signature(getattr(FakeDiscord, name)) != inspect.signature(getattr(FakeDiscordControl, name))
    ]
    assert differing == []


async def test_killed_bot_process_leaves_the_fake_serving(driver: FakeDiscordDriver, place: Place) -> None:
    """A bot process killed mid-conversation leaves a resumable session, and the next bot is served."""
    info = place.info
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.fakes.bot_process",
        info["api_base_url"],
        info["gateway_url"],
        info["bot_token"],
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        assert (await asyncio.wait_for(child.stdout.readline(), 20)).startswith(b"BOT_READY")
        [session] = await driver.wait_for_sessions()
        await driver.invoke_command(place.channel_id, place.member_id, "echo", {"text": "in flight"})
    finally:
        child.kill()
        await child.wait()

    async def dropped() -> bool | None:
        states = {s["id"]: s for s in await driver.sessions()}
        return True if not states[session["id"]]["connected"] and states[session["id"]]["resumable"] else None

    await driver.wait_for(dropped, what="the killed bot's connection to drop")
    await driver.invoke_command(place.channel_id, place.member_id, "echo", {"text": "nobody listens"})
    bot = TinyBot(sync=False)
    async with running_client(bot, info["bot_token"]):
        interaction = await driver.invoke_command(place.channel_id, place.member_id, "echo", {"text": "again"})
        assert (await driver.wait_for_original(interaction["id"]))["content"] == "'again' 1 False"
