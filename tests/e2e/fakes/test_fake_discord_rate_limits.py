"""Discord's rate limits as the fake enforces them: discord.py paces itself by the headers, a client that ignores
them gets Discord's 429, and a refused request changes nothing. Small windows (or the fake's clock) keep it fast."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import discord
import pytest
from multidict import CIMultiDictProxy

from tests.e2e.fakes.conftest import Place
from tests.e2e.fakes.tinybot import TinyBot
from tests.fakes.discord import ControlError, FakeDiscord, FakeDiscordControl, FakeDiscordDriver, FakeDiscordProcess
from tests.fakes.discord.views import MessageView, RateLimitStatsView

BUCKET_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
)
# A window no test outlives: a bucket stays full until the test moves the fake's clock.
LONG = 60.0
# A window short enough for discord.py to wait out several times within a fast test.
SHORT = 0.4
# A message's timestamp is taken when the fake stores it, a moment after the limits admitted the request.
SLACK = 0.05


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any


class RawClient:
    """A client that ignores every rate-limit header: plain aiohttp with the bot's token."""

    def __init__(self, http: aiohttp.ClientSession, place: Place) -> None:
        self.http = http
        self.base = place.info["api_base_url"]
        self.channel_id = place.channel_id

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Reply:
        async with self.http.request(method, self.base + path, json=body) as response:
            data = await response.json() if response.content_type == "application/json" else None
            return Reply(response.status, response.headers, data)

    async def post(self, content: str, channel_id: int | None = None) -> Reply:
        return await self.call("POST", f"/channels/{channel_id or self.channel_id}/messages", {"content": content})

    async def edit(self, message_id: int, content: str) -> Reply:
        return await self.call("PATCH", f"/channels/{self.channel_id}/messages/{message_id}", {"content": content})

    async def delete(self, message_id: int) -> Reply:
        return await self.call("DELETE", f"/channels/{self.channel_id}/messages/{message_id}")


@pytest.fixture
async def raw(place: Place) -> AsyncIterator[RawClient]:
    headers = {"Authorization": f"Bot {place.info['bot_token']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        yield RawClient(http, place)


def text_channel(bot: TinyBot, place: Place) -> discord.TextChannel:
    channel = bot.get_channel(place.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


def span(moments: list[str]) -> float:
    """Seconds between the first and the last of these moments (ISO timestamps by the fake's clock)."""
    ordered = sorted(datetime.fromisoformat(moment) for moment in moments)
    return (ordered[-1] - ordered[0]).total_seconds()


def created(messages: list[MessageView]) -> list[str]:
    return [message["created_at"] for message in messages]


def bucket(stats: RateLimitStatsView, name: str) -> tuple[int, int]:
    counts = stats["by_bucket"][name]
    return counts["requests"], counts["limited"]


# --- headers and 429s, seen by a client that ignores them -----------------------------------------------------------


async def test_every_reply_carries_its_buckets_headers(driver: FakeDiscordDriver, raw: RawClient) -> None:
    """With the limits on, successes and errors alike say the bucket's limit, what remains and when it resets."""
    await driver.set_rate_limits()
    created = await raw.post("hello")
    me = await raw.call("GET", "/users/@me")
    missing = await raw.call("GET", f"/channels/{raw.channel_id}/messages/1")
    assert (created.status, me.status, missing.status) == (200, 200, 404)
    for reply in (created, me, missing):
        assert all(name in reply.headers for name in BUCKET_HEADERS), reply.headers
    assert (created.headers["X-RateLimit-Limit"], created.headers["X-RateLimit-Remaining"]) == ("5", "4")
    assert 4.9 < float(created.headers["X-RateLimit-Reset-After"]) <= 5.0
    assert created.headers["X-RateLimit-Bucket"] != me.headers["X-RateLimit-Bucket"]


async def test_replies_carry_no_rate_limit_headers_when_the_limits_are_off(
    driver: FakeDiscordDriver, raw: RawClient
) -> None:
    """Off (the default), nothing is limited and no reply carries a rate-limit header; requests are still counted."""
    replies = [await raw.post(f"message {n}") for n in range(7)]
    assert [reply.status for reply in replies] == [200] * 7
    assert not any(name in reply.headers for reply in replies for name in BUCKET_HEADERS)
    stats = await driver.rate_limit_stats()
    assert (stats["enabled"], stats["limited"]) == (False, 0)
    assert bucket(stats, "message_create") == (7, 0)


async def test_sixth_message_in_five_seconds_gets_discords_429(driver: FakeDiscordDriver, raw: RawClient) -> None:
    """Five creates fill a channel's bucket; the sixth gets the 429 discord.py expects; after the window it passes."""
    await driver.set_rate_limits()
    assert [(await raw.post(f"m{n}")).status for n in range(5)] == [200] * 5
    refused = await raw.post("m5")
    assert refused.status == 429
    assert refused.headers["Via"]
    assert refused.headers["X-RateLimit-Scope"] == "user"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Global" not in refused.headers
    assert refused.body["global"] is False
    assert 0 < refused.body["retry_after"] <= 5.0
    assert refused.headers["Retry-After"] == str(math.ceil(refused.body["retry_after"]))
    await driver.advance_clock(refused.body["retry_after"])
    assert (await raw.post("m6")).status == 200
    stats = await driver.rate_limit_stats()
    assert bucket(stats, "message_create") == (7, 1)
    assert (stats["limited"], stats["limited_global"]) == (1, 0)


async def test_each_channel_has_its_own_message_bucket(driver: FakeDiscordDriver, place: Place, raw: RawClient) -> None:
    """A full bucket in one channel leaves another channel's messages alone (the channel is a top-level resource)."""
    await driver.set_rate_limits(overrides={"message_create": (2, LONG)})
    other = await driver.create_channel(place.guild_id, "other")
    assert [(await raw.post(f"m{n}")).status for n in range(3)] == [200, 200, 429]
    assert (await raw.post("elsewhere", other["id"])).status == 200


async def test_edits_count_apart_from_creates_under_the_same_bucket_hash(
    driver: FakeDiscordDriver, raw: RawClient
) -> None:
    """Edits in a channel have their own count, though Discord names their bucket with the creates' hash."""
    await driver.set_rate_limits(overrides={"message_create": (2, LONG), "message_edit": (2, LONG)})
    first = await raw.post("one")
    second = await raw.post("two")
    assert (await raw.post("three")).status == 429
    edits = [await raw.edit(first.body["id"], f"one, edit {n}") for n in range(3)]
    assert [edit.status for edit in edits] == [200, 200, 429]
    assert edits[0].headers["X-RateLimit-Bucket"] == second.headers["X-RateLimit-Bucket"]
    assert edits[0].headers["X-RateLimit-Remaining"] == "1"


async def test_deleting_a_message_is_limited_by_its_age(driver: FakeDiscordDriver, raw: RawClient) -> None:
    """Deletes of messages newer than 10 s, up to two weeks old, and older count in three buckets of their own."""
    await driver.set_rate_limits(overrides={"message_create": (50, LONG)})
    messages = [(await raw.post(f"m{n}")).body["id"] for n in range(3)]
    new = await raw.delete(messages[0])
    await driver.advance_clock(11)
    old = await raw.delete(messages[1])
    await driver.advance_clock(15 * 24 * 3600)
    ancient = await raw.delete(messages[2])
    assert [reply.status for reply in (new, old, ancient)] == [204] * 3
    assert [reply.headers["X-RateLimit-Limit"] for reply in (new, old, ancient)] == ["5", "3", "30"]
    assert len({reply.headers["X-RateLimit-Bucket"] for reply in (new, old, ancient)}) == 3
    stats = await driver.rate_limit_stats()
    assert [bucket(stats, name)[0] for name in ("message_delete_new", "message_delete", "message_delete_old")] == [
        1,
        1,
        1,
    ]


@pytest.mark.parametrize("action", ["create", "edit", "delete"])
async def test_a_refused_request_changes_nothing(
    driver: FakeDiscordDriver, place: Place, raw: RawClient, action: str
) -> None:
    """A create, edit or delete refused with 429 leaves the channel exactly as it was."""
    first = int((await raw.post("original")).body["id"])
    await driver.set_rate_limits(
        overrides={"message_create": (1, LONG), "message_edit": (1, LONG), "message_delete_new": (1, LONG)}
    )
    if action == "create":
        assert (await raw.post("fills the bucket")).status == 200
        refused = await raw.post("refused")
    elif action == "edit":
        assert (await raw.edit(first, "edited once")).status == 200
        refused = await raw.edit(first, "refused")
    else:
        doomed = (await raw.post("doomed")).body["id"]
        assert (await raw.delete(doomed)).status == 204
        refused = await raw.delete(first)
    assert refused.status == 429
    expected = {"create": ["original", "fills the bucket"], "edit": ["edited once"], "delete": ["original"]}
    assert [message["content"] for message in await driver.channel_messages(place.channel_id)] == expected[action]
    assert len((await driver.message(first))["history"]) == (2 if action == "edit" else 1)


async def test_global_limit_refuses_with_a_global_429(driver: FakeDiscordDriver, place: Place, raw: RawClient) -> None:
    """Past the global limit any bot route gets the global 429 (`global: true`), whatever its own bucket says."""
    await driver.set_rate_limits(overrides={"global": (3, LONG)})
    other = await driver.create_channel(place.guild_id, "other")
    assert (await raw.post("one")).status == 200
    assert (await raw.call("GET", "/users/@me")).status == 200
    assert (await raw.call("GET", f"/channels/{other['id']}")).status == 200
    refused = await raw.post("four", other["id"])
    assert refused.status == 429
    assert refused.headers["X-RateLimit-Global"] == "true"
    assert refused.headers["X-RateLimit-Scope"] == "global"
    assert refused.headers["Via"]
    assert refused.body["global"] is True
    assert 0 < refused.body["retry_after"] <= LONG
    await driver.advance_clock(LONG)
    assert (await raw.post("five", other["id"])).status == 200
    stats = await driver.rate_limit_stats()
    assert (stats["limited"], stats["limited_global"]) == (1, 1)
    assert sum(counts["limited"] for counts in stats["by_bucket"].values()) == 0


async def test_webhooks_of_one_interaction_token_share_a_bucket(
    driver: FakeDiscordDriver, place: Place, raw: RawClient
) -> None:
    """The original response and the followups of one interaction count in one bucket; another token has its own."""
    await driver.set_rate_limits(overrides={"interaction_webhook": (3, LONG)})
    app = place.info["application_id"]
    tokens = []
    for _ in range(2):
        interaction = await driver.invoke_command(place.channel_id, place.member_id, "probe", require_bot=False)
        callback = f"/interactions/{interaction['id']}/{interaction['token']}/callback"
        assert (await raw.call("POST", callback, {"type": 5})).status == 204
        tokens.append(interaction["token"])
    webhook = f"/webhooks/{app}/{tokens[0]}"
    replies = [
        await raw.call("PATCH", webhook + "/messages/@original", {"content": "working"}),
        await raw.call("POST", webhook + "?wait=true", {"content": "followup"}),
        await raw.call("GET", webhook + "/messages/@original"),
        await raw.call("POST", webhook + "?wait=true", {"content": "refused"}),
    ]
    assert [reply.status for reply in replies] == [200, 200, 200, 429]
    assert [reply.headers["X-RateLimit-Remaining"] for reply in replies] == ["2", "1", "0", "0"]
    assert len({reply.headers["X-RateLimit-Bucket"] for reply in replies}) == 1
    assert (await raw.call("POST", f"/webhooks/{app}/{tokens[1]}?wait=true", {"content": "other"})).status == 200


async def test_injected_faults_are_not_counted_as_rate_limits(driver: FakeDiscordDriver, raw: RawClient) -> None:
    """A 429 injected as a fault is the test's doing, not the limits': the stats leave it out."""
    await driver.set_rate_limits()
    await driver.inject_rate_limit(method="POST", path="/messages$")
    assert (await raw.post("faulted")).status == 429
    assert (await raw.post("passes")).status == 200
    stats = await driver.rate_limit_stats()
    assert stats["limited"] == 0
    assert bucket(stats, "message_create") == (1, 0)


async def test_reset_returns_to_how_the_fake_was_started(driver: FakeDiscordDriver, raw: RawClient) -> None:
    """`reset()` turns limits switched on by a test off again and forgets the counts."""
    await driver.set_rate_limits(overrides={"message_create": (1, LONG)})
    assert [(await raw.post(f"m{n}")).status for n in range(2)] == [200, 429]
    await driver.reset()
    assert await driver.rate_limit_stats() == {
        "enabled": False,
        "requests": 0,
        "limited": 0,
        "limited_global": 0,
        "by_bucket": {},
    }


async def test_an_unknown_bucket_kind_is_refused(driver: FakeDiscordDriver) -> None:
    """Overriding a limit the fake does not have is a test bug, reported with the names it does have."""
    with pytest.raises(ControlError, match="message_create") as caught:
        await driver.set_rate_limits(overrides={"message_send": (5, 5.0)})
    assert caught.value.status == 400


# --- discord.py, unmodified, against the limits -----------------------------------------------------------------------


async def test_discord_py_paces_message_creates_by_the_headers(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Twelve sends at once all land, spread over three windows of the channel's bucket, without a single 429."""
    await driver.set_rate_limits(overrides={"message_create": (5, SHORT)})
    channel = text_channel(tiny, place)
    await asyncio.gather(*(channel.send(f"message {n}") for n in range(12)))
    messages = await driver.channel_messages(place.channel_id)
    assert sorted(message["content"] for message in messages) == sorted(f"message {n}" for n in range(12))
    assert span(created(messages)) >= 2 * SHORT - SLACK
    assert bucket(await driver.rate_limit_stats(), "message_create") == (12, 0)
    assert await driver.requests(errors_only=True) == []


async def test_discord_py_paces_message_edits_by_the_headers(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Eight edits of a card in a row all land, the last one last, waiting out the edit bucket instead of a 429."""
    await driver.set_rate_limits(overrides={"message_edit": (5, SHORT)})
    card = await text_channel(tiny, place).send("progress 0%")
    for step in range(1, 9):
        await card.edit(content=f"progress {step * 10}%")
    message = await driver.message(card.id)
    assert message["content"] == "progress 80%"
    assert len(message["history"]) == 9
    assert span([version["at"] for version in message["history"][1:]]) >= SHORT - SLACK
    assert bucket(await driver.rate_limit_stats(), "message_edit") == (8, 0)


async def test_discord_py_paces_message_deletes_by_the_headers(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Seven deletes of new messages at once all land, waiting out the delete bucket instead of a 429."""
    channel = text_channel(tiny, place)
    sent = [await channel.send(f"message {n}") for n in range(7)]
    await driver.set_rate_limits(overrides={"message_delete_new": (5, SHORT)})
    await asyncio.gather(*(message.delete() for message in sent))
    assert await driver.channel_messages(place.channel_id) == []
    assert bucket(await driver.rate_limit_stats(), "message_delete_new") == (7, 0)


async def test_discord_py_paces_interaction_webhooks_by_the_headers(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot
) -> None:
    """Edits of the original response and seven followups through one token all land without a 429."""
    await driver.set_rate_limits(overrides={"interaction_webhook": (5, SHORT)})

    async def chatty(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content="working")
        for n in range(7):
            await interaction.followup.send(f"followup {n}")

    tiny.probes.probe = chatty
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "probe")
    outcome = await tiny.probes.next(within=10)
    assert outcome.error is None
    followups = await driver.wait_for_followups(interaction["id"], 7)
    assert [message["content"] for message in followups] == [f"followup {n}" for n in range(7)]
    assert span(created(followups)) >= SHORT - SLACK
    stats = await driver.rate_limit_stats()
    assert bucket(stats, "interaction_webhook") == (8, 0)
    assert stats["limited"] == 0


async def test_discord_py_waits_out_the_global_limit(driver: FakeDiscordDriver, place: Place, tiny: TinyBot) -> None:
    """Over the global limit discord.py gets global 429s, waits `retry_after` and retries: every request lands."""
    channel_ids = [(await driver.create_channel(place.guild_id, f"c{n}"))["id"] for n in range(14)]
    await driver.set_rate_limits(overrides={"global": (10, 1.5)})
    fetched = await asyncio.gather(*(tiny.fetch_channel(channel_id) for channel_id in channel_ids))
    assert [channel.id for channel in fetched] == channel_ids
    stats = await driver.rate_limit_stats()
    assert stats["limited_global"] >= 4
    assert stats["limited"] == stats["limited_global"]


async def test_interaction_callbacks_are_outside_the_global_limit(
    driver: FakeDiscordDriver, place: Place, tiny: TinyBot, raw: RawClient
) -> None:
    """With the global limit spent, a member's command is still answered and followed up (interaction endpoints)."""
    await driver.set_rate_limits(overrides={"global": (2, LONG)})
    assert [(await raw.call("GET", "/users/@me")).status for _ in range(3)] == [200, 200, 429]
    interaction = await driver.invoke_command(place.channel_id, place.member_id, "twice")
    assert (await driver.wait_for_original(interaction["id"]))["content"] == "first"
    assert [m["content"] for m in await driver.wait_for_followups(interaction["id"])] == ["second"]
    assert (await raw.call("GET", "/users/@me")).status == 429
    stats = await driver.rate_limit_stats()
    assert bucket(stats, "interaction_callback") == (1, 0)
    assert bucket(stats, "interaction_webhook") == (1, 0)
    assert stats["limited_global"] == 2


# --- starting with the limits on ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["in_process", "standalone"])
async def test_a_fake_started_with_rate_limits_enforces_them(mode: str) -> None:
    """`FakeDiscord(rate_limits=True)` and `python -m tests.fakes.discord --rate-limits` limit from the start and
    after every reset."""
    overrides = {"message_create": (2, LONG)}
    async with started_with_limits(mode, overrides) as fake:
        for _ in range(2):
            await fake.reset()
            guild = await fake.create_guild()
            channel = await fake.create_channel(guild["id"])
            info = await fake.info()
            place = Place(info=info, guild_id=guild["id"], channel_id=channel["id"], member_id=0)
            async with aiohttp.ClientSession(headers={"Authorization": f"Bot {info['bot_token']}"}) as http:
                raw = RawClient(http, place)
                assert [(await raw.post(f"m{n}")).status for n in range(3)] == [200, 200, 429]
            stats = await fake.rate_limit_stats()
            assert (stats["enabled"], stats["limited"]) == (True, 1)


@contextlib.asynccontextmanager
async def started_with_limits(mode: str, overrides: dict[str, tuple[int, float]]) -> AsyncIterator[FakeDiscordDriver]:
    """The fake in `mode`, started with its rate limits on."""
    if mode == "in_process":
        async with FakeDiscord(rate_limits=True, rate_limit_overrides=overrides) as fake:
            yield fake
        return
    process = FakeDiscordProcess(rate_limits=True, rate_limit_overrides=overrides)
    await asyncio.to_thread(process.start)
    try:
        async with FakeDiscordControl(process.control_url) as control:
            yield control
    finally:
        await asyncio.to_thread(process.stop)
