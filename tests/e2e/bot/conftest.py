"""The real bot, end to end: RunpodBot and its cogs on discord.py, the fake Discord over real sockets, the real
poller and store on a real Redis, and the RunPod emulator over HTTP."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from PIL import Image
from pydantic import SecretStr

from bot import BotDependencies, RunpodBot, discord_budget, point_discord_at
from runpod_bot.core import Role, build_core
from runpod_bot.settings import Settings
from runpod_emulator import Emulator, Scenario
from storage.models import TrackedJob
from storage.store import JobStore
from tests.chaos.audit import is_wait_note
from tests.fakes.discord import FakeDiscord, running_client
from tests.fakes.discord.present import render_message
from tests.fakes.discord.views import InteractionView, MessageView
from tests.plugins.emulator import fast_scenario
from tests.waiting import wait_until

MANAGE_MESSAGES = 1 << 13
MANAGE_GUILD = 1 << 5
ATTACH_FILES = 1 << 15
ALL_BOT_PERMISSIONS = (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31) | (1 << 10)

__all__ = ["Harness", "wait_until"]

# The link to a job's card in the member's acknowledgement.
CARD_LINK = re.compile(r"https://discord\.com/channels/(?:\d+|@me)/\d+/(?P<message_id>\d+)")


def bot_settings(emulator: Emulator, **changes: Any) -> Settings:
    """Settings for a bot on the emulator, with quick polling and no cooldown."""
    fields: dict[str, Any] = {
        # Unused (the bot logs in with the fake's token), but as long as a real one, as the settings require.
        "discord_token": SecretStr("ZmFrZS1kaXNjb3JkLWJvdA.RkFLRQ.unused-here-the-fake-discord-token-is-used"),
        "runpod_api_key": SecretStr(emulator.api_key),
        "runpod_endpoint_id": emulator.endpoint_id,
        "runpod_base_url": emulator.base_url,
        "allow_private_image_urls": True,
        "user_cooldown_s": 0,
        "user_active_jobs": 5,
        "poll_first_ms": 100,
        "poll_queued_min_ms": 100,
        "poll_queued_max_ms": 300,
        "poll_running_min_ms": 100,
        "poll_running_max_ms": 300,
        "card_edit_interval_s": 0.5,
        "models_file": "/nonexistent/models.toml",
    }
    return Settings(**{**fields, **changes})


@dataclass(frozen=True)
class OtherGuild:
    """A second server with its own #general; its owner has every permission there."""

    guild_id: int
    channel_id: int
    owner: int


@dataclass
class Harness:
    """A guild with #general, three members (alice, bob, and mod the moderator), and ways to run the bot."""

    fake: FakeDiscord
    emulator: Emulator
    redis: aioredis.Redis
    http: aiohttp.ClientSession
    guild_id: int
    channel_id: int
    alice: int
    bob: int
    mod: int
    settings: Settings

    def make_bot(self, role: Role = Role.ALL, poller: Mapping[str, Any] | None = None, **changes: Any) -> RunpodBot:
        """The bot with these settings `changes`; `poller` changes poller numbers that are no settings."""
        settings = self.settings.model_copy(update=changes) if changes else self.settings
        core = build_core(settings, self.redis, self.http)
        if poller:
            core = replace(core, poller_settings=replace(core.poller_settings, **poller))
        deps = BotDependencies(
            core=core,
            redis=self.redis,
            http=self.http,
            moderator_role_id=settings.moderator_role_id,
            operator_ids=settings.operator_ids,
            card_edit_interval_s=settings.card_edit_interval_s,
            discord_budget=discord_budget(settings),
            guild_ready_timeout_s=0.05,
            role=role,
            user_installs=settings.user_installs,
        )
        return RunpodBot(deps)

    @asynccontextmanager
    async def running(
        self, role: Role = Role.ALL, poller: Mapping[str, Any] | None = None, **changes: Any
    ) -> AsyncIterator[RunpodBot]:
        """The bot, logged in to the fake and ready, stopped gracefully at the end of the block."""
        bot = self.make_bot(role, poller, **changes)
        if role.connects:
            async with running_client(bot, self.fake.token):
                yield bot
            return
        # A poller never connects to the gateway: it logs in for REST and polls.
        await bot.login(self.fake.token)
        try:
            yield bot
        finally:
            await bot.close()

    async def other_guild(self, owner_id: int | None = None, name: str = "Other Club") -> OtherGuild:
        """Another server the bot is in, owned by `owner_id` (an existing user: a member of this one, say)."""
        guild = await self.fake.create_guild(name, owner_id=owner_id)
        channel = await self.fake.create_channel(guild["id"], "general")
        return OtherGuild(guild_id=guild["id"], channel_id=channel["id"], owner=guild["owner_id"])

    async def imagine(
        self, user_id: int | None = None, channel_id: int | None = None, **options: Any
    ) -> InteractionView:
        """Invoke /imagine as a member and wait for the bot's ephemeral answer."""
        options.setdefault("prompt", "a lighthouse at dusk")
        interaction = await self.fake.invoke_command(
            channel_id or self.channel_id, user_id or self.alice, "imagine", options
        )
        return await self.answered(interaction)

    async def answered(self, interaction: InteractionView) -> InteractionView:
        """The interaction once the bot has given its final answer (a message, or a followup after a defer)."""

        async def answer() -> InteractionView | None:
            view = await self.fake.interaction(interaction["id"])
            if view["response"] is None:
                return None
            if view["response"]["type"] == 5 and not view["followups"] and view["original_message"] is None:
                return None
            if view["response"]["type"] == 5:
                original = view["original_message"]
                if not view["followups"] and (original is None or not (original["content"] or original["embeds"])):
                    return None
                if not view["followups"] and original is not None and is_wait_note(original["content"]):
                    return None  # the card waits for its turn in a busy channel: the answer comes in its place
            return view

        result: InteractionView | None = None

        async def ready() -> bool:
            nonlocal result
            result = await answer()
            return result is not None

        await wait_until(ready, timeout_s=15)
        assert result is not None
        return result

    async def redis_jobs(self, jid: str) -> TrackedJob:
        """A job as the bot recorded it."""
        job = await JobStore(self.redis).get(jid)
        assert job is not None
        return job

    async def messages(self) -> list[MessageView]:
        return await self.fake.channel_messages(self.channel_id)

    async def everything(self) -> list[MessageView]:
        """Every message of #general, the deleted ones (a delivered job's card) too."""
        return await self.fake.channel_messages(self.channel_id, include_deleted=True)

    async def jid_of(self, answer: InteractionView) -> str:
        """The job an /imagine answer is about: the one whose card its link points at."""
        text = answer_text(answer)
        match = CARD_LINK.search(text)
        assert match is not None, text
        return job_of(await self.fake.message(int(match["message_id"])))

    async def wait_for_messages(
        self, predicate: Callable[[list[MessageView]], bool], timeout_s: float = 20
    ) -> list[MessageView]:
        found: list[MessageView] = []

        async def check() -> bool:
            nonlocal found
            found = await self.fake.channel_messages(self.channel_id)
            return predicate(found)

        await wait_until(check, timeout_s=timeout_s)
        return found


def answer_text(view: InteractionView) -> str:
    """What the member read as the bot's answer."""
    parts = []
    response = view["response"]
    if response is not None and response["data"]:
        parts.append(str(response["data"].get("content") or ""))
    if view["original_message"] is not None:
        parts.append(view["original_message"]["content"])
    parts += [message["content"] for message in view["followups"]]
    return "\n".join(part for part in parts if part)


def final_message(view: InteractionView) -> MessageView:
    """The message that carries the bot's answer: the last followup, or the original response."""
    message = view["followups"][-1] if view["followups"] else view["original_message"]
    assert message is not None, "the bot answered without a message"
    return message


def is_ephemeral(view: InteractionView) -> bool:
    response = view["response"]
    return response is not None and response["ephemeral"]


def cards(messages: list[MessageView]) -> list[MessageView]:
    """Job cards: messages whose embed footer names a job and that are not results."""
    return [m for m in messages if m["embeds"] and not m["attachments"] and not m["deleted"] and job_in(m)]


def shown(message: MessageView) -> str:
    """A message as a member reads it (a V2 result: its text, its gallery, its buttons)."""
    return render_message(message)


def removed_cards(messages: list[MessageView]) -> list[MessageView]:
    """Cards the bot deleted when their job's result took their place (from `Harness.everything`)."""
    return [m for m in messages if m["embeds"] and not m["attachments"] and m["deleted"] and job_in(m)]


def results(messages: list[MessageView]) -> list[MessageView]:
    return [m for m in messages if m["attachments"] and not m["deleted"]]


async def dm_results(harness: Harness, user_id: int, count: int = 1) -> list[MessageView]:
    """The member's DM with the bot once it holds `count` results."""
    found: list[MessageView] = []

    async def check() -> bool:
        nonlocal found
        dm = await harness.fake.dm_channel(user_id)
        found = results(await harness.fake.channel_messages(dm["id"])) if dm is not None else []
        return len(found) >= count

    await wait_until(check, timeout_s=20)
    return found


def delivered(found: list[MessageView]) -> bool:
    """Some result is posted and the card of each job with a result is gone (the result takes its place)."""
    posted = {job_of(message) for message in results(found)}
    return bool(posted) and not any(job_of(card) in posted for card in cards(found))


def job_in(message: MessageView) -> str | None:
    """The job a card (its embed footer) or a result (its buttons' custom_ids) belongs to."""
    footer = (message["embeds"][0].get("footer") or {}).get("text", "") if message["embeds"] else ""
    if footer.startswith("job "):
        return str(footer.removeprefix("job "))
    for custom_id in buttons(message):
        if custom_id.startswith("job:"):
            return custom_id.rsplit(":", 1)[1]
    return None


def job_of(message: MessageView) -> str:
    jid = job_in(message)
    assert jid is not None
    return jid


def buttons(message: MessageView) -> list[str]:
    """The custom_ids of a message's buttons, wherever they sit in its layout (rows, containers, sections)."""
    ids: list[str] = []

    def walk(components: list[dict[str, Any]]) -> None:
        for component in components:
            if component.get("type") == 2 and component.get("custom_id"):
                ids.append(str(component["custom_id"]))
            walk(list(component.get("components", [])))
            accessory = component.get("accessory")
            if isinstance(accessory, dict):
                walk([accessory])

    walk(list(message["components"]))
    return ids


def png_of_size(target_bytes: int) -> bytes:
    """A PNG of about `target_bytes` (random noise compresses badly)."""
    import os

    side = int((target_bytes / 3) ** 0.5) + 1
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def decode_b64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture
def emulator_scenario() -> Scenario:
    return fast_scenario(workers=4, execution_s=0.6, strict_limits=False)


@pytest.fixture
async def harness(fake_discord: FakeDiscord, emulator: Emulator, redis: aioredis.Redis) -> AsyncIterator[Harness]:
    info = await fake_discord.info()
    guild = await fake_discord.create_guild("Art Club")
    channel = await fake_discord.create_channel(guild["id"], "general")
    alice = await fake_discord.create_member(guild["id"], "alice")
    bob = await fake_discord.create_member(guild["id"], "bob")
    mod_role = await fake_discord.create_role(guild["id"], "mods", permissions=MANAGE_MESSAGES | MANAGE_GUILD)
    mod = await fake_discord.create_member(guild["id"], "mod", role_ids=[mod_role["id"]])
    point_discord_at(info["api_base_url"], info["gateway_url"])
    async with aiohttp.ClientSession() as http:
        yield Harness(
            fake=fake_discord,
            emulator=emulator,
            redis=redis,
            http=http,
            guild_id=guild["id"],
            channel_id=channel["id"],
            alice=alice["user_id"],
            bob=bob["user_id"],
            mod=mod["user_id"],
            settings=bot_settings(emulator),
        )
