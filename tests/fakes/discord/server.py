"""The fake Discord server: REST, gateway, CDN and control API on one aiohttp app, on one loopback port."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import web

from tests.fakes.discord import present
from tests.fakes.discord.clock import Clock, iso
from tests.fakes.discord.control import register_control_routes
from tests.fakes.discord.driver import FakeDiscordDriver
from tests.fakes.discord.errors import ControlError
from tests.fakes.discord.gateway import DEFAULT_HEARTBEAT_INTERVAL_MS, Gateway
from tests.fakes.discord.models import OVERWRITE_MEMBER, OVERWRITE_ROLE
from tests.fakes.discord.ratelimits import RateLimiter
from tests.fakes.discord.rest import Delay, Fault, RestApi
from tests.fakes.discord.views import (
    ChannelView,
    CommandView,
    GuildView,
    HeldRequestView,
    InfoView,
    InteractionView,
    MemberView,
    MessageView,
    RateLimitStatsView,
    RateLimitsView,
    RequestView,
    RoleView,
    SessionView,
)
from tests.fakes.discord.world import DEFAULT_TOKEN, World, decode_file_list, decode_files

log = logging.getLogger(__name__)

ATTACHMENT_URL = re.compile(r"/attachments/(\d+)/(\d+)/")
# Uploads are checked against Discord's limits (up to 100 MiB), so the server must accept bodies that big.
MAX_BODY = 128 * 1024 * 1024
# discord.py sets no connection limit, so a burst of interactions opens hundreds of connections at once. With
# aiohttp's default accept queue (128) the kernel drops the excess SYNs and each of those clients waits a full second
# to retry, past Discord's 3-second window for a first answer. Discord itself takes any number of connections.
LISTEN_BACKLOG = 2048


class FakeDiscord(FakeDiscordDriver):
    """A fake Discord for one bot application; use as `async with FakeDiscord() as fake:`.

    Point discord.py at it with `api_base_url` (assign to `discord.http.Route.BASE`) and `gateway_url`
    (`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`); the bot logs in with `token`. `rate_limits` turns on
    Discord's rate limits (`rate_limit_overrides`: other numbers for some buckets, e.g. `{"message_create": (5, 0.5)}`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS,
        clock: Clock | None = None,
        rate_limits: bool = False,
        rate_limit_overrides: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.world = World(token=token, clock=clock)
        self.gateway = Gateway(self.world, heartbeat_interval_ms=heartbeat_interval_ms)
        limiter = RateLimiter(
            self.world.clock,
            enabled=rate_limits,
            overrides=rate_limit_overrides,
            message_created_at=self._message_created_at,
        )
        self.rest = RestApi(self.world, self.gateway, limiter)
        self.app = web.Application(middlewares=[self.rest.middleware], client_max_size=MAX_BODY)
        self.app.router.add_get("/gateway", self.gateway.handle)
        self.app.router.add_get("/gateway/resume", self.gateway.handle)
        self.rest.register(self.app)
        register_control_routes(self.app, self)
        self._runner: web.AppRunner | None = None

    def _message_created_at(self, message_id: int) -> datetime | None:
        message = self.world.messages.get(message_id)
        return message.created_at if message is not None else None

    @property
    def token(self) -> str:
        return self.world.token

    @property
    def http_base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base_url(self) -> str:
        """The REST base including the version, for `discord.http.Route.BASE`."""
        return f"{self.http_base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def control_url(self) -> str:
        """The base URL a `FakeDiscordControl` takes."""
        return self.http_base_url

    async def start(self) -> None:
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=LISTEN_BACKLOG)
        await site.start()
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        self.world.http_base_url = self.http_base_url
        self.gateway.url = self.gateway_url
        self.gateway.resume_url = f"ws://{self.host}:{self.port}/gateway/resume"
        log.info("fake Discord listening on %s", self.http_base_url)

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- the server ----------------------------------------------------------------------------------------------

    async def info(self) -> InfoView:
        return InfoView(
            api_base_url=self.api_base_url,
            gateway_url=self.gateway_url,
            http_base_url=self.http_base_url,
            application_id=self.world.application_id,
            bot_user_id=self.world.bot.id,
            application_owner_id=self.world.app_owner.id,
            bot_token=self.world.token,
            now=iso(self.world.clock.now()),
        )

    async def reset(self) -> None:
        await self.gateway.close_all()
        self.rest.clear()
        self.rest.limiter.reset()
        self.world.clock.reset()
        self.world.clear()

    # --- building the world --------------------------------------------------------------------------------------

    async def create_guild(
        self,
        name: str = "Test Guild",
        *,
        premium_tier: int = 0,
        locale: str = "en-US",
        owner_id: int | None = None,
        bot_installed: bool = True,
    ) -> GuildView:
        guild = self.world.create_guild(
            name, premium_tier=premium_tier, locale=locale, owner_id=owner_id, bot_installed=bot_installed
        )
        return present.guild_view(self.world, guild)

    async def guild(self, guild_id: int) -> GuildView:
        return present.guild_view(self.world, self.world.guild(guild_id))

    async def create_role(
        self, guild_id: int, name: str, *, permissions: int = 0, mentionable: bool = False
    ) -> RoleView:
        return present.role_view(
            self.world.create_role(guild_id, name, permissions=permissions, mentionable=mentionable)
        )

    async def create_channel(
        self,
        guild_id: int,
        name: str = "general",
        *,
        channel_type: int = 0,
        topic: str | None = None,
        upload_limit: int | None = None,
        bot_permissions: int | None = None,
        nsfw: bool = False,
    ) -> ChannelView:
        channel = self.world.create_channel(
            guild_id,
            name,
            channel_type=channel_type,
            topic=topic,
            upload_limit=upload_limit,
            bot_permissions=bot_permissions,
            nsfw=nsfw,
        )
        return present.channel_view(self.world, channel)

    async def channel(self, channel_id: int) -> ChannelView:
        return present.channel_view(self.world, self.world.channel(channel_id))

    async def set_bot_permissions(self, channel_id: int, permissions: int | None) -> ChannelView:
        return present.channel_view(self.world, self.world.set_bot_permissions(channel_id, permissions))

    async def set_channel_overwrite(
        self,
        channel_id: int,
        target_id: int,
        *,
        allow: int = 0,
        deny: int = 0,
        target_type: Literal["role", "member"] = "role",
    ) -> ChannelView:
        kind = OVERWRITE_MEMBER if target_type == "member" else OVERWRITE_ROLE
        channel = self.world.set_overwrite(channel_id, target_id, kind=kind, allow=allow, deny=deny)
        return present.channel_view(self.world, channel)

    async def remove_channel_overwrite(self, channel_id: int, target_id: int) -> ChannelView:
        return present.channel_view(self.world, self.world.remove_overwrite(channel_id, target_id))

    async def create_thread(
        self,
        parent_id: int,
        name: str,
        *,
        owner_id: int,
        private: bool = False,
        message_id: int | None = None,
        content: str | None = None,
        member_ids: Sequence[int] = (),
    ) -> ChannelView:
        thread = self.world.create_thread(
            parent_id,
            name,
            owner_id=owner_id,
            private=private,
            message_id=message_id,
            content=content,
            member_ids=member_ids,
        )
        return present.channel_view(self.world, thread)

    async def add_thread_member(self, thread_id: int, user_id: int) -> ChannelView:
        return present.channel_view(self.world, self.world.add_thread_member(thread_id, user_id))

    async def remove_thread_member(self, thread_id: int, user_id: int) -> ChannelView:
        return present.channel_view(self.world, self.world.remove_thread_member(thread_id, user_id))

    async def set_thread_state(
        self, thread_id: int, *, archived: bool | None = None, locked: bool | None = None
    ) -> ChannelView:
        thread = self.world.set_thread_state(thread_id, archived=archived, locked=locked)
        return present.channel_view(self.world, thread)

    async def delete_channel(self, channel_id: int) -> ChannelView:
        return present.channel_view(self.world, self.world.delete_channel(channel_id))

    async def set_upload_limit(self, channel_id: int, limit: int | None) -> ChannelView:
        return present.channel_view(self.world, self.world.set_upload_limit(channel_id, limit))

    async def create_member(
        self,
        guild_id: int,
        username: str,
        *,
        role_ids: Sequence[int] = (),
        permissions: int | None = None,
        nick: str | None = None,
    ) -> MemberView:
        member = self.world.create_member(guild_id, username, role_ids=role_ids, permissions=permissions, nick=nick)
        return present.member_view(self.world, member)

    async def set_member_roles(self, guild_id: int, user_id: int, role_ids: Sequence[int]) -> MemberView:
        return present.member_view(self.world, self.world.set_member_roles(guild_id, user_id, role_ids))

    async def member(self, guild_id: int, user_id: int) -> MemberView:
        return present.member_view(self.world, self.world.member(guild_id, user_id))

    async def set_dms_open(self, user_id: int, open: bool) -> None:
        self.world.set_dms_open(user_id, open)

    async def install_app(self, user_id: int, installed: bool = True) -> None:
        self.world.install_app(user_id, installed)

    async def create_private_channel(
        self, user_ids: Sequence[int], *, group: bool = True, name: str = ""
    ) -> ChannelView:
        return present.channel_view(self.world, self.world.create_private_channel(user_ids, group=group, name=name))

    async def dm_channel(self, user_id: int) -> ChannelView | None:
        channel = self.world.dm_channel(user_id)
        return present.channel_view(self.world, channel) if channel is not None else None

    # --- what members do -----------------------------------------------------------------------------------------

    async def invoke_command(
        self,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        locale: str = "en-US",
        require_bot: bool = True,
    ) -> InteractionView:
        interaction = self.world.command_interaction(
            channel_id, user_id, name, options, locale=locale, files=decode_files(files)
        )
        self.world.deliver(interaction, require_bot=require_bot)
        return present.interaction_view(self.world, interaction)

    async def invoke_message_command(
        self, message_id: int, user_id: int, name: str, *, locale: str = "en-US", require_bot: bool = True
    ) -> InteractionView:
        interaction = self.world.message_command_interaction(message_id, user_id, name, locale=locale)
        self.world.deliver(interaction, require_bot=require_bot)
        return present.interaction_view(self.world, interaction)

    async def post_member_message(
        self, channel_id: int, user_id: int, content: str = "", files: Sequence[tuple[str, bytes]] = ()
    ) -> MessageView:
        message = self.world.member_message(channel_id, user_id, content, decode_file_list(files))
        return present.message_view(message)

    async def submit_modal(
        self, interaction_id: int, values: Mapping[str, str | list[str]], *, locale: str = "en-US"
    ) -> InteractionView:
        interaction = self.world.modal_submit_interaction(interaction_id, values, locale=locale)
        self.world.deliver(interaction, require_bot=True)
        return present.interaction_view(self.world, interaction)

    async def autocomplete(
        self,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        locale: str = "en-US",
    ) -> InteractionView:
        interaction = self.world.command_interaction(channel_id, user_id, name, options, locale=locale, focused=focused)
        self.world.deliver(interaction, require_bot=True)
        return present.interaction_view(self.world, interaction)

    async def click_button(
        self, message_id: int, custom_id: str, user_id: int, *, locale: str = "en-US"
    ) -> InteractionView:
        interaction = self.world.component_interaction(message_id, custom_id, user_id, values=None, locale=locale)
        self.world.deliver(interaction, require_bot=True)
        return present.interaction_view(self.world, interaction)

    async def select(
        self, message_id: int, custom_id: str, user_id: int, values: Sequence[str], *, locale: str = "en-US"
    ) -> InteractionView:
        interaction = self.world.component_interaction(message_id, custom_id, user_id, values=values, locale=locale)
        self.world.deliver(interaction, require_bot=True)
        return present.interaction_view(self.world, interaction)

    # --- reading back --------------------------------------------------------------------------------------------

    async def interaction(self, interaction_id: int) -> InteractionView:
        return present.interaction_view(self.world, self.world.interaction(interaction_id))

    async def interactions(self) -> list[InteractionView]:
        return [present.interaction_view(self.world, i) for i in self.world.interactions.values()]

    async def channel_messages(
        self, channel_id: int, *, include_ephemeral: bool = False, include_deleted: bool = False
    ) -> list[MessageView]:
        self.world.channel(channel_id)
        views = []
        for message_id in self.world.channel_messages[channel_id]:
            message = self.world.messages[message_id]
            if (message.ephemeral and not include_ephemeral) or (message.deleted and not include_deleted):
                continue
            views.append(present.message_view(message))
        return views

    async def message(self, message_id: int) -> MessageView:
        return present.message_view(self.world.message(message_id))

    async def attachment_bytes(self, url: str) -> bytes:
        match = ATTACHMENT_URL.search(url)
        attachment = self.world.attachments.get(int(match.group(2))) if match else None
        if attachment is None:
            raise ControlError(f"no attachment at {url}", 404)
        return attachment.data

    async def commands(self, guild_id: int | None = None) -> list[CommandView]:
        return [present.command_view(c) for c in self.world.commands.values() if c.guild_id == guild_id]

    async def sessions(self) -> list[SessionView]:
        return self.gateway.views()

    async def requests(self, *, errors_only: bool = False) -> list[RequestView]:
        return [r for r in self.rest.requests if not errors_only or r["status"] >= 400]

    # --- gateway control -----------------------------------------------------------------------------------------

    async def reconnect(self, session_id: str | None = None) -> list[str]:
        return self.gateway.reconnect(session_id)

    async def invalidate_session(self, session_id: str | None = None, *, resumable: bool = False) -> list[str]:
        return self.gateway.invalidate(session_id, resumable=resumable)

    async def drop_connection(self, session_id: str | None = None) -> list[str]:
        return self.gateway.drop(session_id)

    async def stall_connection(self, session_id: str | None = None) -> list[str]:
        return self.gateway.stall(session_id)

    async def set_recommended_shards(self, count: int) -> None:
        if count < 1:
            raise ControlError("a bot needs at least one shard")
        self.world.recommended_shards = count

    # --- time and faults -----------------------------------------------------------------------------------------

    async def now(self) -> str:
        return iso(self.world.clock.now())

    async def advance_clock(self, seconds: float) -> str:
        try:
            moment = self.world.clock.advance(seconds)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        self.world.touch()
        return iso(moment)

    async def inject_rate_limit(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        count: int = 1,
        retry_after: float = 0.1,
        is_global: bool = False,
    ) -> None:
        self.rest.faults.append(
            Fault(
                method=method.upper() if method else None,
                path=_compile(path),
                remaining=count,
                status=429,
                code=0,
                message="You are being rate limited.",
                retry_after=retry_after,
                is_global=is_global,
            )
        )

    async def inject_error(
        self,
        *,
        status: int,
        code: int = 0,
        message: str = "injected failure",
        method: str | None = None,
        path: str | None = None,
        count: int = 1,
    ) -> None:
        self.rest.faults.append(
            Fault(
                method=method.upper() if method else None,
                path=_compile(path),
                remaining=count,
                status=status,
                code=code,
                message=message,
            )
        )

    async def inject_delay(
        self,
        *,
        seconds: float,
        method: str | None = None,
        path: str | None = None,
        multipart: bool | None = None,
        count: int = 1,
    ) -> None:
        if seconds < 0:
            raise ControlError("a delay cannot be negative")
        self.rest.delays.append(
            Delay(
                method=method.upper() if method else None,
                path=_compile(path),
                remaining=count,
                seconds=seconds,
                multipart=multipart,
            )
        )

    async def held_requests(self) -> list[HeldRequestView]:
        return list(self.rest.held)

    async def set_rate_limits(
        self, enabled: bool = True, *, overrides: Mapping[str, Sequence[float]] | None = None
    ) -> RateLimitsView:
        return self.rest.limiter.configure(enabled, overrides)

    async def rate_limit_stats(self) -> RateLimitStatsView:
        return self.rest.limiter.stats()

    async def clear_faults(self) -> None:
        self.rest.faults.clear()
        self.rest.delays.clear()

    # --- change notification -------------------------------------------------------------------------------------

    async def version(self) -> int:
        return self.world.version

    async def wait_for_change(self, after: int, within: float) -> int:
        return await self.world.wait_for_change(after, within)


def _compile(path: str | None) -> re.Pattern[str] | None:
    if path is None:
        return None
    try:
        return re.compile(path)
    except re.error as exc:
        raise ControlError(f"bad path pattern {path!r}: {exc}") from None
