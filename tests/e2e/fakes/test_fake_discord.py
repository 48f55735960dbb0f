"""The fake Discord as a slash-command bot sees it: unmodified discord.py over real sockets, both fake modes."""

from __future__ import annotations

import io

import discord
import pytest

from tests.e2e.fakes.conftest import Place, png, run_probe
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import ControlError, FakeDiscordDriver, running_client

EPHEMERAL = 1 << 6


def text_channel(bot: TinyBot, place: Place) -> discord.TextChannel:
    channel = bot.get_channel(place.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_bot_logs_in_and_sees_its_guild(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """After login and READY the bot knows who it is and which guild and channel it is in."""
    assert tiny.user is not None
    assert tiny.user.id == place.info["bot_user_id"]
    guild = tiny.get_guild(place.guild_id)
    assert guild is not None
    assert guild.get_channel(place.channel_id) is not None
    assert [s["guild_ids"] for s in await driver.sessions()] == [[place.guild_id]]


async def test_login_with_a_wrong_token_fails(place: Place) -> None:
    """A token the fake does not know is refused the way Discord refuses it."""
    bot = TinyBot()
    with pytest.raises(discord.LoginFailure):
        await bot.login("not-the-bot-token")
    await bot.close()


async def test_synced_commands_are_recorded(driver: FakeDiscordDriver, tiny: TinyBot) -> None:
    """The command tree the bot syncs is what the fake offers members, options included."""
    commands = {command["name"]: command for command in await driver.commands()}
    assert {"echo", "slow", "secret", "card", "pick", "probe"} <= set(commands)
    assert [(o["name"], o["type"]) for o in commands["echo"]["options"]] == [("text", 3), ("count", 4), ("loud", 5)]


async def test_slash_command_options_arrive_typed(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Options reach the command callback with the types the synced command declares."""
    options = {"text": "hello", "count": 3, "loud": True}
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "echo", options)
    original = await driver.wait_for_original(interaction["id"])
    assert original["content"] == "'hello' 3 True"


async def test_unknown_option_is_refused_by_the_control_api(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Invoking a synced command with an option it does not have is a test bug, reported at once."""
    with pytest.raises(ControlError, match="no option"):
        await driver.invoke_command(place.channel_id, place.member_id, "echo", {"text": "x", "colour": "red"})


async def test_defer_then_followup_replaces_the_thinking_message(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A followup after defer(thinking=True) becomes the response the member sees."""
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "slow")
    original = await driver.wait_for_original(interaction["id"])
    answered = await driver.interaction(interaction["id"])
    assert answered["response"] is not None
    assert answered["response"]["type"] == 5
    assert original["content"] == "done thinking"
    assert answered["followups"] == []


async def test_followup_after_a_reply_is_a_new_message(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A followup after a normal reply is posted as a message of its own."""
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "twice")
    followups = await driver.wait_for_followups(interaction["id"])
    answered = await driver.interaction(interaction["id"])
    assert answered["original_message"] is not None
    assert answered["original_message"]["content"] == "first"
    assert [message["content"] for message in followups] == ["second"]


async def test_ephemeral_reply_is_not_in_the_channel(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """An ephemeral reply is recorded as such and never shows in the channel for others."""
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "secret")
    original = await driver.wait_for_original(interaction["id"])
    answered = await driver.interaction(interaction["id"])
    assert answered["response"] is not None
    assert answered["response"]["ephemeral"]
    assert original["flags"] & EPHEMERAL
    assert await driver.channel_messages(place.channel_id) == []
    assert [m["id"] for m in await driver.channel_messages(place.channel_id, include_ephemeral=True)] == [
        original["id"]
    ]


async def test_two_png_attachments_read_back_byte_for_byte(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Files a bot posts are kept and served back at their URLs exactly as sent, with their image size."""
    red, blue = png("red", (4, 3)), png("blue", (2, 5))
    files = [discord.File(io.BytesIO(red), "red.png"), discord.File(io.BytesIO(blue), "blue.png")]
    sent = await text_channel(tiny, place).send("two images", files=files)
    [message] = await driver.wait_for_channel_messages(place.channel_id)
    attachments = message["attachments"]
    assert [a["filename"] for a in attachments] == ["red.png", "blue.png"]
    assert [(a["width"], a["height"], a["content_type"]) for a in attachments] == [
        (4, 3, "image/png"),
        (2, 5, "image/png"),
    ]
    assert [await driver.attachment_bytes(a["url"]) for a in attachments] == [red, blue]
    assert [await attachment.read() for attachment in sent.attachments] == [red, blue]


async def test_message_edit_is_kept_in_history(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Editing a message changes what members see and keeps every earlier version."""
    sent = await text_channel(tiny, place).send("job queued")
    await sent.edit(content="job running", embed=discord.Embed(title="Progress", description="50%"))
    message = await driver.message(sent.id)
    assert message["content"] == "job running"
    assert message["embeds"][0]["title"] == "Progress"
    assert [version["content"] for version in message["history"]] == ["job queued", "job running"]
    assert message["edited_at"] is not None


async def test_edit_keeps_only_the_attachments_it_lists(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """An edit with `attachments=` keeps the listed files, drops the others and adds new uploads."""
    first, second, third = png("red"), png("green"), png("blue")
    sent = await text_channel(tiny, place).send(
        files=[discord.File(io.BytesIO(first), "a.png"), discord.File(io.BytesIO(second), "b.png")]
    )
    await sent.edit(attachments=[sent.attachments[1], discord.File(io.BytesIO(third), "c.png")])
    message = await driver.message(sent.id)
    assert [a["filename"] for a in message["attachments"]] == ["b.png", "c.png"]
    assert [await driver.attachment_bytes(a["url"]) for a in message["attachments"]] == [second, third]


async def test_images_posted_as_a_reply_reference_the_card(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A reply carries its message_reference, so the images sit under the job card."""
    channel = text_channel(tiny, place)
    card = await channel.send("job card")
    await channel.send(
        "result", files=[discord.File(io.BytesIO(png("red")), "1.png")], reference=card, mention_author=False
    )
    messages = await driver.wait_for_channel_messages(place.channel_id, 2)
    reply = messages[1]
    assert reply["message_reference"] is not None
    assert reply["message_reference"]["message_id"] == str(card.id)
    assert reply["type"] == 19


async def test_button_click_reaches_the_dynamic_item(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Clicking a Cancel button routes to the DynamicItem that matches its custom_id, which edits the card."""
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "card", {"job": "abc123"})
    card = await driver.wait_for_original(interaction["id"])
    assert card["components"][0]["components"][0]["custom_id"] == "job:cancel:abc123"
    click = await driver.click_button(card["id"], "job:cancel:abc123", place.member_id)
    cancelled = await driver.wait_for_message(card["id"], lambda m: m["content"] == "job abc123 cancelled")
    clicked = await driver.interaction(click["id"])
    assert clicked["response"] is not None
    assert clicked["response"]["type"] == 7
    assert cancelled["components"] == []


async def test_autocomplete_returns_the_bots_choices(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """What a member types reaches the autocomplete callback, and its choices come back."""
    choices = await driver.autocomplete_choices(place.channel_id, place.member_id, "pick", {"size": "10"}, "size")
    assert [choice["value"] for choice in choices] == ["1024x1024", "1024x768"]


async def test_mention_pings_the_member_by_default(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Without allowed_mentions, a <@member> mention in content notifies that member."""
    await text_channel(tiny, place).send(f"<@{place.member_id}> your image is ready")
    [message] = await driver.wait_for_channel_messages(place.channel_id)
    assert message["pings"]["users"] == [place.member_id]
    assert message["pinged_anyone"]


async def test_allowed_mentions_none_pings_nobody(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """With AllowedMentions.none(), mentions in content notify nobody, and the fake records what was sent."""
    await text_channel(tiny, place).send(
        f"<@{place.member_id}> @everyone <@&{place.guild_id}>", allowed_mentions=discord.AllowedMentions.none()
    )
    [message] = await driver.wait_for_channel_messages(place.channel_id)
    assert not message["pinged_anyone"]
    assert message["allowed_mentions"] == {"parse": []}


async def test_interaction_carries_member_channel_and_limits(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """The interaction names the member and channel, the upload limit and the bot's permissions there."""
    seen: list[discord.Interaction] = []

    async def remember(interaction: discord.Interaction) -> None:
        seen.append(interaction)
        await interaction.response.send_message("ok")

    _, outcome = await run_probe(driver, place, tiny, remember)
    assert outcome.error is None
    [interaction] = seen
    assert interaction.user.id == place.member_id
    assert interaction.channel_id == place.channel_id
    assert interaction.filesize_limit == 10 * 1024 * 1024
    permissions = interaction.app_permissions
    assert (permissions.send_messages, permissions.attach_files, permissions.embed_links) == (True, True, True)


async def test_select_menu_choice_reaches_its_callback(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Choosing in a select menu delivers the chosen values to the view's callback."""
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "menu")
    menu = await driver.wait_for_original(interaction["id"])
    choice = await driver.select(menu["id"], "menu:size", place.member_id, ["768x768"])
    answer = await driver.wait_for_original(choice["id"])
    assert answer["content"] == "chose 768x768"
    assert answer["ephemeral"]


async def test_response_can_be_edited_and_deleted_with_the_token(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Within the token's life the bot edits its response (adding a file) and then deletes it."""
    image = png("purple")
    original_ids: list[int] = []

    async def edit_then_delete(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("working")
        message = await interaction.edit_original_response(
            content="here it is", attachments=[discord.File(io.BytesIO(image), "art.png")]
        )
        original_ids.append(message.id)
        await interaction.delete_original_response()

    _, outcome = await run_probe(driver, place, tiny, edit_then_delete)
    assert outcome.error is None
    message = await driver.message(original_ids[0])
    assert [version["content"] for version in message["history"]] == ["working", "here it is"]
    assert await driver.attachment_bytes(message["history"][-1]["attachments"][0]["url"]) == image
    assert message["deleted"]


async def test_modal_response_is_recorded(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A modal sent in answer to a command is recorded with its title and fields."""

    async def ask(interaction: discord.Interaction) -> None:
        modal = discord.ui.Modal(title="Describe your image", custom_id="describe")
        modal.add_item(discord.ui.TextInput(label="Prompt", custom_id="prompt"))
        await interaction.response.send_modal(modal)

    interaction, outcome = await run_probe(driver, place, tiny, ask)
    assert outcome.error is None
    answered = await driver.interaction(interaction["id"])
    assert answered["response"] is not None
    assert answered["response"]["type"] == 9
    assert answered["modal"] is not None
    assert answered["modal"]["title"] == "Describe your image"


async def test_guild_synced_commands_are_invoked_as_guild_commands(driver: FakeDiscordDriver, place: Place) -> None:
    """Commands synced to one guild (as with DEV_GUILD_ID) are found there and answered."""
    bot = TinyBot(dev_guild_id=place.guild_id)
    async with running_client(bot, place.info["bot_token"]):
        assert await driver.commands() == []
        assert "echo" in {command["name"] for command in await driver.commands(place.guild_id)}
        interaction = await driver.invoke_command(place.channel_id, place.member_id, "echo", {"text": "guild"})
        assert interaction["data"]["guild_id"] == str(place.guild_id)
        assert (await driver.wait_for_original(interaction["id"]))["content"] == "'guild' 1 False"


async def test_followup_can_be_edited_and_deleted(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """A followup is edited and deleted through the interaction webhook by its id."""
    followup_ids: list[int] = []

    async def followup_lifecycle(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("started")
        followup = await interaction.followup.send("50%", wait=True)
        followup_ids.append(followup.id)
        await followup.edit(content="100%")
        await followup.delete()

    _, outcome = await run_probe(driver, place, tiny, followup_lifecycle)
    assert outcome.error is None
    message = await driver.message(followup_ids[0])
    assert [version["content"] for version in message["history"]] == ["50%", "100%"]
    assert message["deleted"]


async def test_channel_history_lists_messages_newest_first(place: Place, tiny: TinyBot) -> None:
    """Reading a channel's history returns its messages newest first, as Discord does."""
    channel = text_channel(tiny, place)
    for text in ("one", "two", "three"):
        await channel.send(text)
    assert [message.content async for message in channel.history(limit=2)] == ["three", "two"]
    assert [message.content async for message in channel.history(oldest_first=True)] == ["one", "two", "three"]


async def test_fetching_channel_guild_and_member(place: Place, tiny: TinyBot) -> None:
    """Fetching the channel, the guild and a member over REST returns what the fake holds."""
    channel = await tiny.fetch_channel(place.channel_id)
    guild = await tiny.fetch_guild(place.guild_id)
    member = await guild.fetch_member(place.member_id)
    assert isinstance(channel, discord.TextChannel)
    assert (channel.name, guild.name, member.name) == ("general", "Test Guild", "alice")
