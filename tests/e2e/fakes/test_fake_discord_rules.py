"""Discord's rules as the fake enforces them, each producing the exception discord.py raises on real Discord."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable

import aiohttp
import discord
import discord.http
import pytest

from tests.e2e.fakes.conftest import Place, png, run_probe
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import FakeDiscordDriver, Permission, running_client
from tests.fakes.discord.views import HeldRequestView

ALL_BOT_PERMISSIONS = int(
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
)


def text_channel(bot: TinyBot, place: Place) -> discord.TextChannel:
    channel = bot.get_channel(place.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_first_response_after_three_seconds_is_unknown_interaction(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Answering an interaction more than 3 s after it was created fails with 10062."""
    gate = asyncio.Event()

    async def late_reply(interaction: discord.Interaction) -> None:
        await gate.wait()
        await interaction.response.send_message("too late")

    tiny.probes.probe = late_reply
    await driver.invoke_command(place.channel_id, place.member_id, "probe")
    await driver.advance_clock(3.5)
    gate.set()
    outcome = await tiny.probes.next()
    assert isinstance(outcome.error, discord.NotFound)
    assert outcome.error.code == 10062


async def test_second_acknowledgement_is_refused(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """When two bot processes answer the same interaction, the second gets 40060."""
    other = TinyBot(sync=False)

    async def answer(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("mine")

    tiny.probes.probe = other.probes.probe = answer
    async with running_client(other, place.info["bot_token"]):
        interaction = await driver.invoke_command(place.channel_id, place.member_id, "probe")
        outcomes = [await tiny.probes.next(), await other.probes.next()]
    assert len(interaction["delivered_to"]) == 2
    errors = [outcome.error for outcome in outcomes if outcome.error is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], discord.HTTPException)
    assert (errors[0].status, errors[0].code) == (400, 40060)


async def test_followup_after_fifteen_minutes_has_an_invalid_token(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """The interaction token dies after 15 minutes: a later followup fails with 401 50027."""
    gate = asyncio.Event()

    async def defer_then_wait(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await gate.wait()
        await interaction.followup.send("finally")

    tiny.probes.probe = defer_then_wait
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "probe")
    await driver.wait_for_response(interaction["id"])
    await driver.advance_clock(15 * 60 + 1)
    gate.set()
    outcome = await tiny.probes.next()
    assert isinstance(outcome.error, discord.HTTPException)
    assert (outcome.error.status, outcome.error.code) == (401, 50027)


async def test_channel_message_can_be_edited_after_the_token_expired(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A response message stays editable through the channel API once the interaction token is gone."""

    async def reply(interaction: discord.Interaction) -> int:
        await interaction.response.send_message("job queued")
        return (await interaction.original_response()).id

    _, outcome = await run_probe(driver, place, tiny, reply)
    assert isinstance(outcome.value, int)
    await driver.advance_clock(20 * 60)
    await text_channel(tiny, place).get_partial_message(outcome.value).edit(content="job done")
    assert (await driver.message(outcome.value))["content"] == "job done"


async def test_content_over_2000_characters_is_invalid(place: Place, tiny: TinyBot) -> None:
    """Message content longer than 2000 characters fails with 50035."""
    with pytest.raises(discord.HTTPException) as caught:
        await text_channel(tiny, place).send("x" * 2001)
    assert (caught.value.status, caught.value.code) == (400, 50035)
    assert "content" in caught.value.text


def long_title() -> list[discord.Embed]:
    return [discord.Embed(title="t" * 257)]


def long_description() -> list[discord.Embed]:
    return [discord.Embed(description="d" * 4097)]


def too_many_fields() -> list[discord.Embed]:
    embed = discord.Embed(title="fields")
    for number in range(26):
        embed.add_field(name=f"f{number}", value="v")
    return [embed]


def long_field_name() -> list[discord.Embed]:
    return [discord.Embed().add_field(name="n" * 257, value="v")]


def long_field_value() -> list[discord.Embed]:
    return [discord.Embed().add_field(name="n", value="v" * 1025)]


def long_footer() -> list[discord.Embed]:
    return [discord.Embed(title="footer").set_footer(text="f" * 2049)]


def long_author() -> list[discord.Embed]:
    return [discord.Embed(title="author").set_author(name="a" * 257)]


def over_6000_in_total() -> list[discord.Embed]:
    return [discord.Embed(description="d" * 3500), discord.Embed(description="d" * 3500)]


@pytest.mark.parametrize(
    "embeds",
    [
        long_title,
        long_description,
        too_many_fields,
        long_field_name,
        long_field_value,
        long_footer,
        long_author,
        over_6000_in_total,
    ],
)
async def test_embed_over_a_limit_is_invalid(
    place: Place, tiny: TinyBot, embeds: Callable[[], list[discord.Embed]]
) -> None:
    """Each embed limit (title, description, fields, footer, author, 6000 in total) fails with 50035."""
    with pytest.raises(discord.HTTPException) as caught:
        await text_channel(tiny, place).send(embeds=embeds())
    assert (caught.value.status, caught.value.code) == (400, 50035)


async def test_more_than_ten_embeds_is_invalid(place: Place, tiny: TinyBot) -> None:
    """Eleven embeds in one message fail with 50035 (discord.py's raw request, as its helpers refuse earlier)."""
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=place.channel_id)
    with pytest.raises(discord.HTTPException) as caught:
        await tiny.http.request(route, json={"embeds": [{"title": str(n)} for n in range(11)]})
    assert (caught.value.status, caught.value.code) == (400, 50035)


async def test_more_than_ten_files_is_invalid(place: Place, tiny: TinyBot) -> None:
    """Eleven files in one message fail with 50035."""
    files = [discord.File(io.BytesIO(png("red")), f"{n}.png") for n in range(11)]
    with pytest.raises(discord.HTTPException) as caught:
        await text_channel(tiny, place).send(files=files)
    assert (caught.value.status, caught.value.code) == (400, 50035)


async def test_empty_message_is_refused(place: Place, tiny: TinyBot) -> None:
    """A message with nothing in it fails with 50006."""
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=place.channel_id)
    with pytest.raises(discord.HTTPException) as caught:
        await tiny.http.request(route, json={"content": ""})
    assert (caught.value.status, caught.value.code) == (400, 50006)


async def test_upload_over_the_channel_limit_is_too_large(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A file bigger than the channel's upload limit fails with 413 40005."""
    await driver.set_upload_limit(place.channel_id, 1024)
    big = discord.File(io.BytesIO(bytes(2048)), "big.bin")
    with pytest.raises(discord.HTTPException) as caught:
        await text_channel(tiny, place).send(file=big)
    assert (caught.value.status, caught.value.code) == (413, 40005)


async def test_interaction_reports_the_channel_upload_limit(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """The channel's upload limit reaches the bot as Interaction.filesize_limit."""
    await driver.set_upload_limit(place.channel_id, 8 * 1024 * 1024)

    async def limit(interaction: discord.Interaction) -> int:
        await interaction.response.send_message("ok", ephemeral=True)
        return interaction.filesize_limit

    _, outcome = await run_probe(driver, place, tiny, limit)
    assert outcome.value == 8 * 1024 * 1024


async def send_text(channel: discord.TextChannel, earlier: discord.Message) -> None:
    await channel.send("hello")


async def send_file(channel: discord.TextChannel, earlier: discord.Message) -> None:
    await channel.send(file=discord.File(io.BytesIO(png("red")), "a.png"))


async def send_embed(channel: discord.TextChannel, earlier: discord.Message) -> None:
    await channel.send(embed=discord.Embed(title="card"))


async def reply_to_earlier(channel: discord.TextChannel, earlier: discord.Message) -> None:
    await channel.send("reply", reference=earlier)


@pytest.mark.parametrize(
    ("missing", "action"),
    [
        (Permission.SEND_MESSAGES, send_text),
        (Permission.ATTACH_FILES, send_file),
        (Permission.EMBED_LINKS, send_embed),
        (Permission.READ_MESSAGE_HISTORY, reply_to_earlier),
    ],
)
async def test_missing_channel_permission_is_forbidden(
    driver: FakeDiscordDriver,
    place: Place,
    tiny: TinyBot,
    missing: Permission,
    action: Callable[[discord.TextChannel, discord.Message], Awaitable[None]],
) -> None:
    """Without the permission an action needs in the channel, it fails with 403 50013."""
    channel = text_channel(tiny, place)
    earlier = await channel.send("earlier message")
    await driver.set_bot_permissions(place.channel_id, ALL_BOT_PERMISSIONS & ~missing)
    with pytest.raises(discord.Forbidden) as caught:
        await action(channel, earlier)
    assert caught.value.code == 50013


async def test_channel_the_bot_cannot_see_is_missing_access(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """A channel the bot cannot view answers 403 50001."""
    await driver.set_bot_permissions(place.channel_id, 0)
    with pytest.raises(discord.Forbidden) as caught:
        await text_channel(tiny, place).send("hello")
    assert caught.value.code == 50001


async def test_app_permissions_follow_the_channel_overwrites(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """What the bot may do in the channel reaches it as Interaction.app_permissions."""
    await driver.set_bot_permissions(place.channel_id, ALL_BOT_PERMISSIONS & ~Permission.ATTACH_FILES)

    async def permissions(interaction: discord.Interaction) -> discord.Permissions:
        await interaction.response.send_message("ok")
        return interaction.app_permissions

    _, outcome = await run_probe(driver, place, tiny, permissions)
    assert isinstance(outcome.value, discord.Permissions)
    assert (outcome.value.send_messages, outcome.value.attach_files) == (True, False)


async def test_unknown_route_is_not_found(tiny: TinyBot) -> None:
    """A route the fake does not know answers 404, never a silent success."""
    with pytest.raises(discord.NotFound) as caught:
        await tiny.http.request(discord.http.Route("GET", "/no/such/route"))
    assert caught.value.status == 404


@pytest.mark.parametrize("is_global", [False, True])
async def test_rate_limit_is_waited_out_and_retried(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot, is_global: bool
) -> None:
    """A 429 makes discord.py wait `retry_after` and send the request again; the message is posted once."""
    await driver.inject_rate_limit(
        method="POST", path=r"^/channels/\d+/messages$", retry_after=0.3, is_global=is_global
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    await text_channel(tiny, place).send("after the wait")
    assert loop.time() - started >= 0.3
    posts = [r["status"] for r in await driver.requests() if r["method"] == "POST" and r["path"].endswith("/messages")]
    assert posts == [429, 200]
    assert [m["content"] for m in await driver.channel_messages(place.channel_id)] == ["after the wait"]


async def test_json_replies_have_the_exact_content_type(place: Place) -> None:
    """Success and error replies say `application/json` with no charset, as discord.py requires."""
    headers = {"Authorization": f"Bot {place.info['bot_token']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path in ("/users/@me", "/no/such/route"):
            async with http.get(place.info["api_base_url"] + path) as response:
                assert response.headers["Content-Type"] == "application/json"


async def test_injected_error_is_answered_once(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """An injected failure answers the matching request as configured, and the next one succeeds."""
    await driver.inject_error(status=403, code=50013, message="Missing Permissions", method="POST", path="/messages$")
    channel = text_channel(tiny, place)
    with pytest.raises(discord.Forbidden) as caught:
        await channel.send("first try")
    assert caught.value.code == 50013
    await channel.send("second try")
    assert [m["content"] for m in await driver.channel_messages(place.channel_id)] == ["second try"]
    posts = [r for r in await driver.requests() if r["method"] == "POST" and r["path"].endswith("/messages")]
    # The request log tells the injected answer from the fake's own.
    assert [(r["status"], r["injected"]) for r in posts] == [(403, True), (200, False)]


async def test_delayed_reply_comes_after_the_message_exists(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """An injected delay holds the reply of a handled request: the message exists while the client still waits."""
    await driver.inject_delay(seconds=1, method="POST", path=r"^/channels/\d+/messages$", multipart=True)
    await text_channel(tiny, place).send("no files: not held")
    sending = asyncio.create_task(
        text_channel(tiny, place).send("slow news", file=discord.File(io.BytesIO(png("red")), "a.png"))
    )
    (held,) = await driver.wait_for(lambda: _held(driver), within=5, what="a held reply")
    messages = await driver.channel_messages(place.channel_id)
    assert not sending.done()
    sent = await sending
    assert held["method"] == "POST"
    assert held["multipart"]
    assert [message["id"] for message in messages][-1] == sent.id
    assert await driver.held_requests() == []


async def _held(driver: FakeDiscordDriver) -> list[HeldRequestView] | None:
    return await driver.held_requests() or None


async def test_refused_edit_leaves_the_message_unchanged(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """An edit that would leave the message empty fails with 50006 and changes nothing."""
    sent = await text_channel(tiny, place).send("job queued")
    with pytest.raises(discord.HTTPException) as caught:
        await sent.edit(content="")
    assert caught.value.code == 50006
    message = await driver.message(sent.id)
    assert message["content"] == "job queued"
    assert len(message["history"]) == 1
