"""The fake gateway as discord.py sees it: reconnects, resumes with replay, invalid sessions, restarts, shards."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.fakes.conftest import Place
from tests.e2e.fakes.tinybot import TinyBot, TinyShardedBot
from tests.fakes.discord import ControlError, FakeDiscordDriver, running_client


async def echo_answered(driver: FakeDiscordDriver, place: Place, text: str) -> str:
    """Run /echo as alice and return what the bot answered."""
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "echo", {"text": text})
    return (await driver.wait_for_original(interaction["id"]))["content"]


async def test_bot_resumes_after_a_reconnect_request(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """After op 7 the bot reconnects to resume_gateway_url and RESUMEs the same session."""
    [session] = await driver.sessions()
    assert await driver.reconnect() == [session["id"]]
    await asyncio.wait_for(tiny.resumed.wait(), 5)
    resumed = await driver.wait_for_resume(session["id"])
    assert resumed["connections"] == 2
    assert await echo_answered(driver, place, "still here") == "'still here' 1 False"


async def test_bot_resumes_after_a_dropped_connection(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A connection cut without a close frame is resumed, not re-identified."""
    [session] = await driver.sessions()
    await driver.drop_connection()
    await asyncio.wait_for(tiny.resumed.wait(), 5)
    await driver.wait_for_resume(session["id"])
    assert [s["id"] for s in await driver.sessions()] == [session["id"]]
    assert await echo_answered(driver, place, "back") == "'back' 1 False"


async def test_missed_interaction_is_replayed_on_resume(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """An interaction sent while the connection was dead reaches the bot when it resumes."""
    [session] = await driver.sessions()
    await driver.stall_connection()
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "echo", {"text": "missed"})
    assert (await driver.interaction(interaction["id"]))["response"] is None
    await driver.drop_connection()
    original = await driver.wait_for_original(interaction["id"])
    assert original["content"] == "'missed' 1 False"
    resumed = await driver.wait_for_resume(session["id"])
    assert resumed["replayed"] >= 1


async def test_invalid_session_makes_the_bot_identify_again(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """After a non-resumable op 9 the bot starts a new session, and commands still work."""
    [old] = await driver.sessions()
    await driver.invalidate_session()

    async def new_session() -> str | None:
        live = [s["id"] for s in await driver.sessions() if s["connected"] and s["ready"]]
        return live[0] if live and live[0] != old["id"] else None

    new_id = await driver.wait_for(new_session, what="a new gateway session")
    assert new_id != old["id"]
    assert await echo_answered(driver, place, "anew") == "'anew' 1 False"


async def test_resumable_invalid_session_is_resumed(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """After a resumable op 9 the bot resumes the session it had."""
    [session] = await driver.sessions()
    await driver.invalidate_session(resumable=True)
    await asyncio.wait_for(tiny.resumed.wait(), 5)
    assert (await driver.wait_for_resume(session["id"]))["resumes"] == 1


async def test_restarted_bot_identifies_again(driver: FakeDiscordDriver, place: Place) -> None:
    """A bot that vanished and was started again gets a new session and answers commands."""
    first = TinyBot()
    async with running_client(first, place.info["bot_token"]):
        [old] = await driver.sessions()
        await driver.drop_connection()
    second = TinyBot()
    async with running_client(second, place.info["bot_token"]):
        live = await driver.wait_for_sessions()
        assert [s["id"] for s in live] != [old["id"]]
        assert await echo_answered(driver, place, "restarted") == "'restarted' 1 False"


async def test_command_without_a_connected_bot_is_refused(driver: FakeDiscordDriver, place: Place) -> None:
    """Invoking a command while no bot session exists fails at once instead of timing out."""
    with pytest.raises(ControlError, match="no bot session"):
        await driver.invoke_command(place.channel_id, place.member_id, "echo", {"text": "anyone?"})


async def test_sharded_bot_gets_each_guild_on_its_shard(driver: FakeDiscordDriver, place: Place) -> None:
    """An AutoShardedBot follows /gateway/bot; each guild's events reach the shard (guild_id >> 22) % 2."""
    await driver.set_recommended_shards(2)
    other_guild = await driver.create_guild("Other Guild")
    other_channel = await driver.create_channel(other_guild["id"], "general")
    bob = await driver.create_member(other_guild["id"], "bob")
    assert (place.guild_id >> 22) % 2 != (other_guild["id"] >> 22) % 2
    bot = TinyShardedBot()
    async with running_client(bot, place.info["bot_token"]):
        sessions = await driver.wait_for_sessions(2)
        by_shard = {s["shard"][0]: s for s in sessions if s["shard"] is not None}
        assert sorted(by_shard) == [0, 1]
        for guild_id, channel_id, user_id in (
            (place.guild_id, place.channel_id, place.member_id),
            (other_guild["id"], other_channel["id"], bob["user_id"]),
        ):
            shard = by_shard[(guild_id >> 22) % 2]
            assert shard["guild_ids"] == [guild_id]
            interaction = await driver.invoke_command(channel_id, user_id, "echo", {"text": "shard"})
            assert interaction["delivered_to"] == [shard["id"]]
            assert (await driver.wait_for_original(interaction["id"]))["content"] == "'shard' 1 False"
