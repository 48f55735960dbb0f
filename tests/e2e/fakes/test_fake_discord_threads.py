"""Threads and forum posts as unmodified discord.py meets them: where messages land, who may post, archived, locked
and deleted threads, and the gateway events that keep discord.py's cache true."""

from __future__ import annotations

import discord
import pytest

from tests.e2e.fakes.conftest import Place, run_probe
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import FakeDiscordDriver
from tests.waiting import wait_until

SEND_MESSAGES = 1 << 11
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
FORUM = 15
PUBLIC_THREAD, PRIVATE_THREAD = 11, 12


async def thread_in(driver: FakeDiscordDriver, place: Place, *, private: bool = False) -> int:
    thread = await driver.create_thread(place.channel_id, "critique", owner_id=place.member_id, private=private)
    return thread["id"]


async def test_a_command_in_a_thread_arrives_with_the_thread_as_its_channel(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """discord.py sees the thread (and its parent) as the interaction's channel, and a send lands in the thread."""
    thread_id = await thread_in(driver, place)

    async def where(interaction: discord.Interaction) -> tuple[object, object]:
        channel = interaction.channel
        assert isinstance(channel, discord.Thread)
        await channel.send("in the thread")
        await interaction.response.send_message("ok", ephemeral=True)
        return channel.id, channel.parent_id

    tiny.probes.probe = where
    await driver.invoke_command(thread_id, place.member_id, "probe")
    outcome = await tiny.probes.next()
    assert outcome.value == (thread_id, place.channel_id)
    assert [m["content"] for m in await driver.channel_messages(thread_id)] == ["in the thread"]
    assert await driver.channel_messages(place.channel_id) == []


async def test_posting_in_a_thread_takes_send_messages_in_threads_not_send_messages(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Without Send Messages in Threads the bot cannot post in a thread, even with Send Messages; with it, it can
    without Send Messages."""
    thread_id = await thread_in(driver, place)
    info = await driver.info()
    bot_id = info["bot_user_id"]
    thread = tiny.get_partial_messageable(thread_id, guild_id=place.guild_id)
    await driver.set_channel_overwrite(place.channel_id, bot_id, deny=SEND_MESSAGES_IN_THREADS, target_type="member")
    with pytest.raises(discord.Forbidden) as caught:
        await thread.send("refused")
    assert caught.value.code == 50013
    await driver.set_channel_overwrite(
        place.channel_id, bot_id, allow=SEND_MESSAGES_IN_THREADS, deny=SEND_MESSAGES, target_type="member"
    )
    await thread.send("allowed")
    assert [m["content"] for m in await driver.channel_messages(thread_id)] == ["allowed"]


async def test_a_private_thread_is_closed_to_the_bot_until_it_is_added(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A private thread answers 50001 to a bot that is not its member; once added, discord.py knows it is one."""
    thread_id = await thread_in(driver, place, private=True)
    info = await driver.info()
    with pytest.raises(discord.Forbidden) as caught:
        await tiny.get_partial_messageable(thread_id, guild_id=place.guild_id).send("hello")
    assert caught.value.code == 50001
    await driver.add_thread_member(thread_id, info["bot_user_id"])
    guild = tiny.get_guild(place.guild_id)
    assert guild is not None
    await wait_until(lambda: (t := guild.get_thread(thread_id)) is not None and t.me is not None)
    thread = guild.get_thread(thread_id)
    assert thread is not None
    assert thread.type is discord.ChannelType.private_thread
    await thread.send("hello")
    assert [m["content"] for m in await driver.channel_messages(thread_id)] == ["hello"]


async def test_an_archived_thread_refuses_edits_and_is_unarchived_by_a_new_message(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Editing in an archived thread is 400 50083; sending there unarchives it (and discord.py hears so)."""
    thread_id = await thread_in(driver, place)
    channel = tiny.get_partial_messageable(thread_id, guild_id=place.guild_id)
    card = await channel.send("card")
    await driver.set_thread_state(thread_id, archived=True)
    with pytest.raises(discord.HTTPException) as caught:
        await card.edit(content="edited")
    assert (caught.value.status, caught.value.code) == (400, 50083)
    await channel.send("result")
    assert not (await driver.channel(thread_id))["archived"]
    guild = tiny.get_guild(place.guild_id)
    assert guild is not None
    await wait_until(lambda: (t := guild.get_thread(thread_id)) is not None and not t.archived)


async def test_a_locked_thread_refuses_the_bot_without_manage_threads(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A locked thread answers 403 160005 (archived too: 400 50083), and only Manage Threads may unarchive it."""
    thread_id = await thread_in(driver, place)
    channel = tiny.get_partial_messageable(thread_id, guild_id=place.guild_id)
    await channel.send("card")
    await driver.set_thread_state(thread_id, locked=True)
    with pytest.raises(discord.Forbidden) as locked:
        await channel.send("refused")
    assert locked.value.code == 160005
    await driver.set_thread_state(thread_id, archived=True)
    with pytest.raises(discord.HTTPException) as archived:
        await channel.send("refused")
    assert (archived.value.status, archived.value.code) == (400, 50083)
    thread = await tiny.fetch_channel(thread_id)
    assert isinstance(thread, discord.Thread)
    assert thread.locked
    assert thread.archived
    with pytest.raises(discord.Forbidden):
        await thread.edit(archived=False)
    info = await driver.info()
    await driver.set_channel_overwrite(
        place.channel_id, info["bot_user_id"], allow=MANAGE_THREADS, target_type="member"
    )
    unarchived = await thread.edit(archived=False)
    assert not unarchived.archived


async def test_a_deleted_thread_is_unknown_and_leaves_discord_pys_cache(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """After THREAD_DELETE discord.py forgets the thread, and posting there is 404 10003."""
    thread_id = await thread_in(driver, place)
    guild = tiny.get_guild(place.guild_id)
    assert guild is not None
    await wait_until(lambda: guild.get_thread(thread_id) is not None)
    await driver.delete_channel(thread_id)
    await wait_until(lambda: guild.get_thread(thread_id) is None)
    with pytest.raises(discord.NotFound) as caught:
        await tiny.get_partial_messageable(thread_id).send("too late")
    assert caught.value.code == 10003


async def test_a_forum_post_is_a_thread_of_the_forum_and_the_forum_takes_no_messages(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """ForumChannel.create_thread makes a post (thread + first message, same id); a message straight to the forum is
    400 50024; a member's post is a thread the bot can answer in."""
    forum_view = await driver.create_channel(place.guild_id, "gallery", channel_type=FORUM)
    await wait_until(lambda: tiny.get_channel(forum_view["id"]) is not None)
    forum = tiny.get_channel(forum_view["id"])
    assert isinstance(forum, discord.ForumChannel)
    created = await forum.create_thread(name="my post", content="first words")
    assert created.thread.parent_id == forum.id
    assert created.message.id == created.thread.id
    with pytest.raises(discord.HTTPException) as caught:
        await tiny.get_partial_messageable(forum.id).send("not here")
    assert caught.value.code == 50024
    post = await driver.create_thread(forum.id, "a member's post", owner_id=place.member_id, content="look")
    await tiny.get_partial_messageable(post["id"]).send("answer")
    assert [m["content"] for m in await driver.channel_messages(post["id"])] == ["look", "answer"]


async def test_the_bot_starts_a_thread_from_its_message_with_create_public_threads(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Message.create_thread needs Create Public Threads, and the thread's id is the message's."""
    channel = tiny.get_partial_messageable(place.channel_id, guild_id=place.guild_id)
    card = await channel.send("card")
    info = await driver.info()
    await driver.set_channel_overwrite(
        place.channel_id, info["bot_user_id"], deny=CREATE_PUBLIC_THREADS, target_type="member"
    )
    with pytest.raises(discord.Forbidden):
        await card.create_thread(name="discuss")
    await driver.set_channel_overwrite(
        place.channel_id, info["bot_user_id"], allow=CREATE_PUBLIC_THREADS, target_type="member"
    )
    thread = await card.create_thread(name="discuss")
    assert (thread.id, thread.parent_id, thread.type) == (card.id, place.channel_id, discord.ChannelType.public_thread)
    assert (await driver.channel(thread.id))["owner_id"] == info["bot_user_id"]


async def test_members_cannot_use_commands_in_an_archived_thread(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Discord's client offers no app commands in an archived thread: the fake refuses to invoke one there."""
    thread_id = await thread_in(driver, place)
    await driver.set_thread_state(thread_id, archived=True)
    with pytest.raises(Exception, match="archived"):
        await run_probe(driver, Place(place.info, place.guild_id, thread_id, place.member_id), tiny, _noop)


async def _noop(interaction: discord.Interaction) -> None:
    await interaction.response.send_message("ok", ephemeral=True)
