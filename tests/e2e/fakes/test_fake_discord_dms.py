"""Direct messages as a bot sends them with unmodified discord.py: files, replies, edits, buttons, closed DMs."""

from __future__ import annotations

import io

import discord
import pytest

from tests.e2e.fakes.conftest import Place, png, run_probe
from tests.e2e.fakes.tinybot import CancelButton, TinyBot
from tests.fakes.discord import ControlError, FakeDiscordDriver, running_client

MIB = 1024 * 1024
DM_CHANNEL = 1
REPLY = 19


async def open_dm(bot: discord.Client, user_id: int) -> discord.DMChannel:
    """The bot's DM channel with a user, opened as discord.py opens it (`User.create_dm()`)."""
    user = await bot.fetch_user(user_id)
    return await user.create_dm()


async def test_private_result_reaches_the_member_by_dm_byte_for_byte(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Images a command sends to the member's DMs arrive there, outside the guild, exactly as sent."""
    red, blue = png("red", (4, 3)), png("blue", (2, 5))

    async def deliver_privately(interaction: discord.Interaction) -> discord.Message:
        await interaction.response.send_message("sent to your DMs", ephemeral=True)
        files = [discord.File(io.BytesIO(red), "red.png"), discord.File(io.BytesIO(blue), "blue.png")]
        return await interaction.user.send("your images", files=files)

    _, outcome = await run_probe(driver, place, tiny, deliver_privately)
    assert isinstance(outcome.value, discord.Message)
    dm = await driver.dm_channel(place.member_id)
    assert dm is not None
    assert (dm["type"], dm["recipient_id"], dm["guild_id"]) == (DM_CHANNEL, place.member_id, None)
    [message] = await driver.channel_messages(dm["id"])
    assert (message["content"], message["guild_id"]) == ("your images", None)
    assert [a["filename"] for a in message["attachments"]] == ["red.png", "blue.png"]
    assert [await driver.attachment_bytes(a["url"]) for a in message["attachments"]] == [red, blue]
    assert [await attachment.read() for attachment in outcome.value.attachments] == [red, blue]
    assert await driver.channel_messages(place.channel_id) == []


async def test_the_bot_keeps_one_dm_channel_per_member(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A restarted bot opening the member's DMs again gets the same channel, so both messages are in one place."""
    first = await open_dm(tiny, place.member_id)
    await first.send("job 1 done")
    restarted = TinyBot(sync=False)
    async with running_client(restarted, place.info["bot_token"]):
        second = await open_dm(restarted, place.member_id)
        await second.send("job 2 done")
    assert second.id == first.id
    dm = await driver.dm_channel(place.member_id)
    assert dm is not None
    assert dm["id"] == first.id
    assert [m["content"] for m in await driver.channel_messages(first.id)] == ["job 1 done", "job 2 done"]


async def test_member_without_a_dm_channel_has_none(driver: FakeDiscordDriver, place: Place) -> None:
    """Until the bot opens a DM with a member, there is no DM channel to read."""
    assert await driver.dm_channel(place.member_id) is None


async def test_dm_to_a_member_with_closed_dms_is_forbidden(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A member who does not accept DMs makes the send fail with 403 50007, and receives nothing."""
    await driver.set_dms_open(place.member_id, False)
    assert not (await driver.member(place.guild_id, place.member_id))["dms_open"]
    dm = await open_dm(tiny, place.member_id)
    with pytest.raises(discord.Forbidden) as caught:
        await dm.send("your image is ready")
    assert (caught.value.status, caught.value.code) == (403, 50007)
    assert await driver.channel_messages(dm.id) == []


async def test_dm_file_over_ten_mib_is_too_large(place: Place, tiny: TinyBot) -> None:
    """Discord's default 10 MiB upload limit applies in DMs: a larger file fails with 413 40005."""
    dm = await open_dm(tiny, place.member_id)
    with pytest.raises(discord.HTTPException) as caught:
        await dm.send(file=discord.File(io.BytesIO(b"\0" * (10 * MIB + 1)), "huge.png"))
    assert (caught.value.status, caught.value.code) == (413, 40005)


async def test_reply_in_a_dm_references_the_card(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Images posted as a reply in a DM sit under the job card; the reference names no guild."""
    dm = await open_dm(tiny, place.member_id)
    card = await dm.send("job card")
    await dm.send("result", files=[discord.File(io.BytesIO(png("red")), "1.png")], reference=card)
    reply = (await driver.channel_messages(dm.id))[1]
    assert reply["type"] == REPLY
    assert reply["message_reference"] == {"type": 0, "message_id": str(card.id), "channel_id": str(dm.id)}


async def test_dm_edit_is_kept_in_history(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Editing a DM changes what the member sees and keeps the earlier version."""
    dm = await open_dm(tiny, place.member_id)
    sent = await dm.send("job queued")
    await sent.edit(content="job running", embed=discord.Embed(title="Progress", description="50%"))
    message = await driver.message(sent.id)
    assert (message["content"], message["embeds"][0]["title"]) == ("job running", "Progress")
    assert [version["content"] for version in message["history"]] == ["job queued", "job running"]


async def test_dm_is_fetched_back_by_id(place: Place, tiny: TinyBot) -> None:
    """The bot can fetch a DM it sent (as after a restart, to edit the card)."""
    dm = await open_dm(tiny, place.member_id)
    sent = await dm.send("job card")
    fetched = await dm.fetch_message(sent.id)
    assert (fetched.id, fetched.content, fetched.guild) == (sent.id, "job card", None)


async def test_deleted_dm_is_gone(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A DM the bot deletes disappears from the member's DM channel."""
    dm = await open_dm(tiny, place.member_id)
    sent = await dm.send("job card")
    await sent.delete()
    assert (await driver.message(sent.id))["deleted"]
    assert await driver.channel_messages(dm.id) == []


async def test_button_click_in_a_dm_reaches_the_dynamic_item(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Cancel on a DM'd job card routes to its DynamicItem, which sees a DM interaction from the user."""
    dm = await open_dm(tiny, place.member_id)
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton("abc123"))
    card = await dm.send("job abc123 queued", view=view)
    click = await driver.click_button(card.id, "job:cancel:abc123", place.member_id)
    cancelled = await driver.wait_for_message(card.id, lambda m: m["content"] == "job abc123 cancelled")
    assert cancelled["components"] == []
    assert (click["guild_id"], click["channel_id"]) == (None, dm.id)
    [seen] = tiny.clicks
    assert (seen.guild_id, type(seen.user), seen.user.id) == (None, discord.User, place.member_id)
    assert isinstance(seen.channel, discord.DMChannel)
    assert seen.context.dm_channel


async def test_command_in_a_dm_arrives_from_the_user(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A slash command used in the bot's DM reaches discord.py with the user, the DM channel and DM limits."""
    dm = await open_dm(tiny, place.member_id)
    seen: list[discord.Interaction] = []

    async def remember(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.send_message("ok")

    tiny.probes.probe = remember
    interaction = await driver.invoke_command(dm.id, place.member_id, "probe")
    assert (await tiny.probes.next()).error is None
    [received] = seen
    assert (received.guild, type(received.user), received.channel_id) == (None, discord.User, dm.id)
    assert received.filesize_limit == 10 * MIB
    assert (received.app_permissions.attach_files, received.app_permissions.embed_links) == (True, True)
    original = await driver.wait_for_original(interaction["id"])
    assert (original["channel_id"], original["guild_id"], original["content"]) == (dm.id, None, "ok")


async def test_only_the_recipient_can_use_a_dm(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Another member cannot click a button in someone else's DM: the control API refuses it."""
    bob = await driver.create_member(place.guild_id, "bob")
    dm = await open_dm(tiny, place.member_id)
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton("abc123"))
    card = await dm.send("job abc123 queued", view=view)
    with pytest.raises(ControlError) as caught:
        await driver.click_button(card.id, "job:cancel:abc123", bob["user_id"])
    assert caught.value.status == 403
