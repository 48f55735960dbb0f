"""Message context-menu commands and attachment options, run by a member against a small discord.py app."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import discord.http
import pytest
from discord import app_commands

from tests.e2e.fakes.conftest import Place, png
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import ControlError, FakeDiscordDriver, running_client

MESSAGE_COMMAND = 3


class ImageBot(TinyBot):
    """The tiny bot plus a "Remix image" message command and an /upscale command that takes a file."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: asyncio.Queue[Any] = asyncio.Queue()

    async def setup_hook(self) -> None:
        @app_commands.context_menu(name="Remix image")
        async def remix(interaction: discord.Interaction, message: discord.Message) -> None:
            data = [await attachment.read() for attachment in message.attachments]
            await interaction.response.send_message(f"remixing {len(data)} image(s)", ephemeral=True)
            self.seen.put_nowait((message, data))

        @app_commands.command(description="Upscale an image")
        async def upscale(interaction: discord.Interaction, image: discord.Attachment, factor: int = 2) -> None:
            data = await image.read()
            await interaction.response.send_message(f"upscaling {image.filename} x{factor}")
            self.seen.put_nowait((image, data))

        self.tree.add_command(remix)
        self.tree.add_command(upscale)
        await super().setup_hook()


@pytest.fixture
async def bot(place: Place) -> AsyncIterator[ImageBot]:
    image_bot = ImageBot()
    async with running_client(image_bot, place.info["bot_token"]):
        yield image_bot


async def posted_image(bot: ImageBot, place: Place) -> discord.Message:
    channel = bot.get_channel(place.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return await channel.send("result", file=discord.File(io.BytesIO(png("green", (6, 5))), "result.png"))


async def test_message_command_is_synced(driver: FakeDiscordDriver, bot: ImageBot) -> None:
    """A context menu synced by discord.py is recorded as a message command (type 3) without a description."""
    commands = {command["name"]: command for command in await driver.commands()}
    assert commands["Remix image"]["type"] == MESSAGE_COMMAND
    assert commands["Remix image"]["description"] == ""


async def test_message_command_runs_on_the_target_and_downloads_its_attachment(
    driver: FakeDiscordDriver, place: Place, bot: ImageBot
) -> None:
    """The callback gets the target message, and the bot can read the bytes of its attachment."""
    target = await posted_image(bot, place)
    interaction = await driver.invoke_message_command(target.id, place.member_id, "Remix image")
    message, data = await asyncio.wait_for(bot.seen.get(), 5)
    assert interaction["data"]["target_id"] == str(target.id)
    assert message.id == target.id
    assert data == [png("green", (6, 5))]
    reply = await driver.wait_for_original(interaction["id"])
    assert reply["content"] == "remixing 1 image(s)"


async def test_unknown_message_command_is_refused_by_the_control_api(
    driver: FakeDiscordDriver, place: Place, bot: ImageBot
) -> None:
    """Running a message command the bot never synced is a test bug, reported at once."""
    target = await posted_image(bot, place)
    with pytest.raises(ControlError, match="no message command"):
        await driver.invoke_message_command(target.id, place.member_id, "Describe")


async def test_more_than_fifteen_message_commands_are_refused(place: Place, bot: ImageBot) -> None:
    """Discord allows 15 message commands per scope: a sync of 16 fails with 50035 (discord.py stops at 5)."""
    route = discord.http.Route("PUT", "/applications/{application_id}/commands", application_id=bot.application_id)
    commands = [{"name": f"menu {n}", "type": MESSAGE_COMMAND} for n in range(16)]
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.request(route, json=commands)
    assert caught.value.code == 50035


async def test_message_command_name_over_32_characters_is_refused(place: Place, bot: ImageBot) -> None:
    """A message command's name is 1-32 characters: a longer one fails with 50035."""
    route = discord.http.Route("PUT", "/applications/{application_id}/commands", application_id=bot.application_id)
    with pytest.raises(discord.HTTPException) as caught:
        await bot.http.request(route, json=[{"name": "m" * 33, "type": MESSAGE_COMMAND}])
    assert caught.value.code == 50035
    assert "name" in caught.value.text


async def test_attachment_option_reads_the_uploaded_bytes(
    driver: FakeDiscordDriver, place: Place, bot: ImageBot
) -> None:
    """A member runs /upscale with a file; the command gets a discord.Attachment whose read() is the upload."""
    upload = png("purple", (7, 3))
    interaction = await driver.invoke_command(
        place.channel_id, place.member_id, "upscale", {"factor": 4}, files={"image": ("cat.png", upload)}
    )
    image, data = await asyncio.wait_for(bot.seen.get(), 5)
    assert data == upload
    assert (image.filename, image.size, image.content_type, image.width, image.height) == (
        "cat.png",
        len(upload),
        "image/png",
        7,
        3,
    )
    reply = await driver.wait_for_original(interaction["id"])
    assert reply["content"] == "upscaling cat.png x4"


async def test_uploaded_option_file_is_served_with_its_content_type(
    driver: FakeDiscordDriver, place: Place, bot: ImageBot
) -> None:
    """The upload's URL answers a plain GET with the bytes and the file's Content-Type."""
    upload = png("orange")
    interaction = await driver.invoke_command(
        place.channel_id, place.member_id, "upscale", files={"image": ("cat.png", upload)}
    )
    (attachment,) = interaction["data"]["resolved"]["attachments"].values()
    async with aiohttp.ClientSession() as http, http.get(attachment["url"]) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert await response.read() == upload


async def test_file_for_a_text_option_is_refused_by_the_control_api(
    driver: FakeDiscordDriver, place: Place, bot: ImageBot
) -> None:
    """Only attachment options take files: a file for another option is a test bug, reported at once."""
    with pytest.raises(ControlError, match="attachment options take a file"):
        await driver.invoke_command(place.channel_id, place.member_id, "echo", files={"text": ("cat.png", png("red"))})


async def test_message_command_runs_on_a_members_own_picture(
    driver: FakeDiscordDriver, place: Place, bot: ImageBot
) -> None:
    """A member posts a picture; the message command on it gets that member's message and its bytes."""
    picture = png("orange", (4, 4))
    posted = await driver.post_member_message(place.channel_id, place.member_id, "my cat", [("cat.png", picture)])
    assert posted["author_id"] == place.member_id
    interaction = await driver.invoke_message_command(posted["id"], place.member_id, "Remix image")
    message, data = await asyncio.wait_for(bot.seen.get(), 5)
    assert interaction["data"]["target_id"] == str(posted["id"])
    assert (message.author.id, message.content, data) == (place.member_id, "my cat", [picture])


async def test_a_member_without_attach_files_cannot_post_a_picture(driver: FakeDiscordDriver, place: Place) -> None:
    """Posting files takes Attach Files, as in the Discord client: without it the control API refuses."""
    await driver.set_channel_overwrite(place.channel_id, place.member_id, deny=1 << 15, target_type="member")
    with pytest.raises(ControlError, match="may not post files"):
        await driver.post_member_message(place.channel_id, place.member_id, "", [("cat.png", png("red", (2, 2)))])
