"""The control API: HTTP routes under `/_fake/...` and `FakeDiscordControl`, the async client that drives them.

Every route calls the in-process `FakeDiscord` method of the same name, so the standalone process offers exactly
what the in-process fixture does. A route answers `{"result": ...}`, or `{"error": "..."}` with a 4xx status.
tests/fakes/README.md lists the routes.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, cast

import aiohttp
from aiohttp import web

from tests.fakes.discord.driver import FakeDiscordDriver
from tests.fakes.discord.errors import ControlError
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

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

log = logging.getLogger(__name__)

# (HTTP method, path, FakeDiscord method). Path parameters and the JSON body (or, for GET, the query string)
# become the method's keyword arguments.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/_fake/info", "info"),
    ("POST", "/_fake/reset", "reset"),
    ("POST", "/_fake/guilds", "create_guild"),
    ("GET", "/_fake/guilds/{guild_id:\\d+}", "guild"),
    ("POST", "/_fake/guilds/{guild_id:\\d+}/roles", "create_role"),
    ("POST", "/_fake/guilds/{guild_id:\\d+}/channels", "create_channel"),
    ("POST", "/_fake/guilds/{guild_id:\\d+}/members", "create_member"),
    ("GET", "/_fake/guilds/{guild_id:\\d+}/members/{user_id:\\d+}", "member"),
    ("PUT", "/_fake/guilds/{guild_id:\\d+}/members/{user_id:\\d+}/roles", "set_member_roles"),
    ("PUT", "/_fake/users/{user_id:\\d+}/dms", "set_dms_open"),
    ("PUT", "/_fake/users/{user_id:\\d+}/app-install", "install_app"),
    ("POST", "/_fake/private-channels", "create_private_channel"),
    ("GET", "/_fake/users/{user_id:\\d+}/dm-channel", "dm_channel"),
    ("GET", "/_fake/channels/{channel_id:\\d+}", "channel"),
    ("PUT", "/_fake/channels/{channel_id:\\d+}/bot-permissions", "set_bot_permissions"),
    ("PUT", "/_fake/channels/{channel_id:\\d+}/overwrites/{target_id:\\d+}", "set_channel_overwrite"),
    ("DELETE", "/_fake/channels/{channel_id:\\d+}/overwrites/{target_id:\\d+}", "remove_channel_overwrite"),
    ("PUT", "/_fake/channels/{channel_id:\\d+}/upload-limit", "set_upload_limit"),
    ("POST", "/_fake/channels/{parent_id:\\d+}/threads", "create_thread"),
    ("PUT", "/_fake/threads/{thread_id:\\d+}/members/{user_id:\\d+}", "add_thread_member"),
    ("DELETE", "/_fake/threads/{thread_id:\\d+}/members/{user_id:\\d+}", "remove_thread_member"),
    ("PUT", "/_fake/threads/{thread_id:\\d+}/state", "set_thread_state"),
    ("DELETE", "/_fake/channels/{channel_id:\\d+}", "delete_channel"),
    ("GET", "/_fake/channels/{channel_id:\\d+}/messages", "channel_messages"),
    ("GET", "/_fake/messages/{message_id:\\d+}", "message"),
    ("POST", "/_fake/interactions/commands", "invoke_command"),
    ("POST", "/_fake/interactions/autocomplete", "autocomplete"),
    ("POST", "/_fake/interactions/buttons", "click_button"),
    ("POST", "/_fake/interactions/selects", "select"),
    ("POST", "/_fake/interactions/message-commands", "invoke_message_command"),
    ("POST", "/_fake/interactions/{interaction_id:\\d+}/modal-submit", "submit_modal"),
    ("POST", "/_fake/channels/{channel_id:\\d+}/member-messages", "post_member_message"),
    ("GET", "/_fake/interactions", "interactions"),
    ("GET", "/_fake/interactions/{interaction_id:\\d+}", "interaction"),
    ("GET", "/_fake/commands", "commands"),
    ("GET", "/_fake/sessions", "sessions"),
    ("POST", "/_fake/sessions/reconnect", "reconnect"),
    ("POST", "/_fake/sessions/invalidate", "invalidate_session"),
    ("POST", "/_fake/sessions/drop", "drop_connection"),
    ("POST", "/_fake/sessions/stall", "stall_connection"),
    ("PUT", "/_fake/gateway/shards", "set_recommended_shards"),
    ("GET", "/_fake/clock", "now"),
    ("POST", "/_fake/clock/advance", "advance_clock"),
    ("POST", "/_fake/faults/rate-limits", "inject_rate_limit"),
    ("POST", "/_fake/faults/errors", "inject_error"),
    ("POST", "/_fake/faults/delays", "inject_delay"),
    ("GET", "/_fake/held-requests", "held_requests"),
    ("DELETE", "/_fake/faults", "clear_faults"),
    ("PUT", "/_fake/rate-limits", "set_rate_limits"),
    ("GET", "/_fake/rate-limits/stats", "rate_limit_stats"),
    ("GET", "/_fake/requests", "requests"),
    ("GET", "/_fake/version", "version"),
    ("GET", "/_fake/changes", "wait_for_change"),
)

# Query-string values of GET routes, typed.
QUERY_TYPES: dict[str, Callable[[str], Any]] = {
    "include_ephemeral": lambda value: value == "true",
    "include_deleted": lambda value: value == "true",
    "errors_only": lambda value: value == "true",
    "guild_id": int,
    "after": int,
    "within": float,
}


def _reply(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json"})


def register_control_routes(app: web.Application, fake: FakeDiscord) -> None:
    for method, path, name in ROUTES:
        app.router.add_route(method, path, _handler(fake, name))


def _handler(fake: FakeDiscord, name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {key: int(value) for key, value in request.match_info.items()}
        try:
            if request.method == "GET":
                for key, value in request.query.items():
                    kwargs[key] = QUERY_TYPES.get(key, str)(value)
            elif request.can_read_body:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ControlError("the request body must be a JSON object")
                kwargs.update(body)
            result = await getattr(fake, name)(**kwargs)
        except ControlError as exc:
            return _reply(exc.status, {"error": str(exc)})
        except (TypeError, ValueError) as exc:
            return _reply(400, {"error": f"{name}: {exc}"})
        return _reply(200, {"result": result})

    return handle


class FakeDiscordControl(FakeDiscordDriver):
    """Drives a fake Discord over its control API (a standalone `python -m tests.fakes.discord` process)."""

    def __init__(self, base_url: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, query: Mapping[str, Any] | None = None
    ) -> Any:
        params = {key: _query_value(value) for key, value in (query or {}).items() if value is not None}
        async with self._http().request(method, self.base_url + path, json=body, params=params) as response:
            data = await response.json(content_type=None)
        if response.status >= 400 or not isinstance(data, dict) or "result" not in data:
            message = data.get("error") if isinstance(data, dict) else None
            raise ControlError(message or f"{method} {path} answered {response.status}", response.status)
        return data["result"]

    # --- the server ----------------------------------------------------------------------------------------------

    async def info(self) -> InfoView:
        return cast(InfoView, await self._call("GET", "/_fake/info"))

    async def reset(self) -> None:
        await self._call("POST", "/_fake/reset", {})

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
        body = {
            "name": name,
            "premium_tier": premium_tier,
            "locale": locale,
            "owner_id": owner_id,
            "bot_installed": bot_installed,
        }
        return cast(GuildView, await self._call("POST", "/_fake/guilds", body))

    async def guild(self, guild_id: int) -> GuildView:
        return cast(GuildView, await self._call("GET", f"/_fake/guilds/{guild_id}"))

    async def create_role(
        self, guild_id: int, name: str, *, permissions: int = 0, mentionable: bool = False
    ) -> RoleView:
        body = {"name": name, "permissions": permissions, "mentionable": mentionable}
        return cast(RoleView, await self._call("POST", f"/_fake/guilds/{guild_id}/roles", body))

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
        body = {
            "name": name,
            "channel_type": channel_type,
            "topic": topic,
            "upload_limit": upload_limit,
            "bot_permissions": bot_permissions,
            "nsfw": nsfw,
        }
        return cast(ChannelView, await self._call("POST", f"/_fake/guilds/{guild_id}/channels", body))

    async def channel(self, channel_id: int) -> ChannelView:
        return cast(ChannelView, await self._call("GET", f"/_fake/channels/{channel_id}"))

    async def set_bot_permissions(self, channel_id: int, permissions: int | None) -> ChannelView:
        path = f"/_fake/channels/{channel_id}/bot-permissions"
        return cast(ChannelView, await self._call("PUT", path, {"permissions": permissions}))

    async def set_channel_overwrite(
        self,
        channel_id: int,
        target_id: int,
        *,
        allow: int = 0,
        deny: int = 0,
        target_type: Literal["role", "member"] = "role",
    ) -> ChannelView:
        path = f"/_fake/channels/{channel_id}/overwrites/{target_id}"
        body = {"allow": allow, "deny": deny, "target_type": target_type}
        return cast(ChannelView, await self._call("PUT", path, body))

    async def remove_channel_overwrite(self, channel_id: int, target_id: int) -> ChannelView:
        path = f"/_fake/channels/{channel_id}/overwrites/{target_id}"
        return cast(ChannelView, await self._call("DELETE", path))

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
        body = {
            "name": name,
            "owner_id": owner_id,
            "private": private,
            "message_id": message_id,
            "content": content,
            "member_ids": list(member_ids),
        }
        return cast(ChannelView, await self._call("POST", f"/_fake/channels/{parent_id}/threads", body))

    async def add_thread_member(self, thread_id: int, user_id: int) -> ChannelView:
        return cast(ChannelView, await self._call("PUT", f"/_fake/threads/{thread_id}/members/{user_id}"))

    async def remove_thread_member(self, thread_id: int, user_id: int) -> ChannelView:
        return cast(ChannelView, await self._call("DELETE", f"/_fake/threads/{thread_id}/members/{user_id}"))

    async def set_thread_state(
        self, thread_id: int, *, archived: bool | None = None, locked: bool | None = None
    ) -> ChannelView:
        body = {"archived": archived, "locked": locked}
        return cast(ChannelView, await self._call("PUT", f"/_fake/threads/{thread_id}/state", body))

    async def delete_channel(self, channel_id: int) -> ChannelView:
        return cast(ChannelView, await self._call("DELETE", f"/_fake/channels/{channel_id}"))

    async def set_upload_limit(self, channel_id: int, limit: int | None) -> ChannelView:
        path = f"/_fake/channels/{channel_id}/upload-limit"
        return cast(ChannelView, await self._call("PUT", path, {"limit": limit}))

    async def create_member(
        self,
        guild_id: int,
        username: str,
        *,
        role_ids: Sequence[int] = (),
        permissions: int | None = None,
        nick: str | None = None,
    ) -> MemberView:
        body = {"username": username, "role_ids": list(role_ids), "permissions": permissions, "nick": nick}
        return cast(MemberView, await self._call("POST", f"/_fake/guilds/{guild_id}/members", body))

    async def set_member_roles(self, guild_id: int, user_id: int, role_ids: Sequence[int]) -> MemberView:
        path = f"/_fake/guilds/{guild_id}/members/{user_id}/roles"
        return cast(MemberView, await self._call("PUT", path, {"role_ids": list(role_ids)}))

    async def member(self, guild_id: int, user_id: int) -> MemberView:
        return cast(MemberView, await self._call("GET", f"/_fake/guilds/{guild_id}/members/{user_id}"))

    async def set_dms_open(self, user_id: int, open: bool) -> None:
        await self._call("PUT", f"/_fake/users/{user_id}/dms", {"open": open})

    async def install_app(self, user_id: int, installed: bool = True) -> None:
        await self._call("PUT", f"/_fake/users/{user_id}/app-install", {"installed": installed})

    async def create_private_channel(
        self, user_ids: Sequence[int], *, group: bool = True, name: str = ""
    ) -> ChannelView:
        body = {"user_ids": list(user_ids), "group": group, "name": name}
        return cast(ChannelView, await self._call("POST", "/_fake/private-channels", body))

    async def dm_channel(self, user_id: int) -> ChannelView | None:
        return cast(ChannelView | None, await self._call("GET", f"/_fake/users/{user_id}/dm-channel"))

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
        body = {
            "channel_id": channel_id,
            "user_id": user_id,
            "name": name,
            "options": dict(options or {}),
            "files": {
                option: {"filename": filename, "data": base64.b64encode(data).decode()}
                for option, (filename, data) in (files or {}).items()
            },
            "locale": locale,
            "require_bot": require_bot,
        }
        return cast(InteractionView, await self._call("POST", "/_fake/interactions/commands", body))

    async def invoke_message_command(
        self, message_id: int, user_id: int, name: str, *, locale: str = "en-US", require_bot: bool = True
    ) -> InteractionView:
        body = {
            "message_id": message_id,
            "user_id": user_id,
            "name": name,
            "locale": locale,
            "require_bot": require_bot,
        }
        return cast(InteractionView, await self._call("POST", "/_fake/interactions/message-commands", body))

    async def post_member_message(
        self, channel_id: int, user_id: int, content: str = "", files: Sequence[tuple[str, bytes]] = ()
    ) -> MessageView:
        body = {
            "user_id": user_id,
            "content": content,
            "files": [{"filename": name, "data": base64.b64encode(data).decode()} for name, data in files],
        }
        return cast(MessageView, await self._call("POST", f"/_fake/channels/{channel_id}/member-messages", body))

    async def submit_modal(
        self, interaction_id: int, values: Mapping[str, str | list[str]], *, locale: str = "en-US"
    ) -> InteractionView:
        path = f"/_fake/interactions/{interaction_id}/modal-submit"
        return cast(InteractionView, await self._call("POST", path, {"values": dict(values), "locale": locale}))

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
        body = {
            "channel_id": channel_id,
            "user_id": user_id,
            "name": name,
            "options": dict(options),
            "focused": focused,
            "locale": locale,
        }
        return cast(InteractionView, await self._call("POST", "/_fake/interactions/autocomplete", body))

    async def click_button(
        self, message_id: int, custom_id: str, user_id: int, *, locale: str = "en-US"
    ) -> InteractionView:
        body = {"message_id": message_id, "custom_id": custom_id, "user_id": user_id, "locale": locale}
        return cast(InteractionView, await self._call("POST", "/_fake/interactions/buttons", body))

    async def select(
        self, message_id: int, custom_id: str, user_id: int, values: Sequence[str], *, locale: str = "en-US"
    ) -> InteractionView:
        body = {
            "message_id": message_id,
            "custom_id": custom_id,
            "user_id": user_id,
            "values": list(values),
            "locale": locale,
        }
        return cast(InteractionView, await self._call("POST", "/_fake/interactions/selects", body))

    # --- reading back --------------------------------------------------------------------------------------------

    async def interaction(self, interaction_id: int) -> InteractionView:
        return cast(InteractionView, await self._call("GET", f"/_fake/interactions/{interaction_id}"))

    async def interactions(self) -> list[InteractionView]:
        return cast(list[InteractionView], await self._call("GET", "/_fake/interactions"))

    async def channel_messages(
        self, channel_id: int, *, include_ephemeral: bool = False, include_deleted: bool = False
    ) -> list[MessageView]:
        query = {"include_ephemeral": include_ephemeral, "include_deleted": include_deleted}
        return cast(list[MessageView], await self._call("GET", f"/_fake/channels/{channel_id}/messages", query=query))

    async def message(self, message_id: int) -> MessageView:
        return cast(MessageView, await self._call("GET", f"/_fake/messages/{message_id}"))

    async def attachment_bytes(self, url: str) -> bytes:
        async with self._http().get(url) as response:
            if response.status != 200:
                raise ControlError(f"no attachment at {url}", response.status)
            return await response.read()

    async def commands(self, guild_id: int | None = None) -> list[CommandView]:
        return cast(list[CommandView], await self._call("GET", "/_fake/commands", query={"guild_id": guild_id}))

    async def sessions(self) -> list[SessionView]:
        return cast(list[SessionView], await self._call("GET", "/_fake/sessions"))

    async def requests(self, *, errors_only: bool = False) -> list[RequestView]:
        query = {"errors_only": errors_only}
        return cast(list[RequestView], await self._call("GET", "/_fake/requests", query=query))

    # --- gateway control -----------------------------------------------------------------------------------------

    async def reconnect(self, session_id: str | None = None) -> list[str]:
        return cast(list[str], await self._call("POST", "/_fake/sessions/reconnect", {"session_id": session_id}))

    async def invalidate_session(self, session_id: str | None = None, *, resumable: bool = False) -> list[str]:
        body = {"session_id": session_id, "resumable": resumable}
        return cast(list[str], await self._call("POST", "/_fake/sessions/invalidate", body))

    async def drop_connection(self, session_id: str | None = None) -> list[str]:
        return cast(list[str], await self._call("POST", "/_fake/sessions/drop", {"session_id": session_id}))

    async def stall_connection(self, session_id: str | None = None) -> list[str]:
        return cast(list[str], await self._call("POST", "/_fake/sessions/stall", {"session_id": session_id}))

    async def set_recommended_shards(self, count: int) -> None:
        await self._call("PUT", "/_fake/gateway/shards", {"count": count})

    # --- time and faults -----------------------------------------------------------------------------------------

    async def now(self) -> str:
        return cast(str, await self._call("GET", "/_fake/clock"))

    async def advance_clock(self, seconds: float) -> str:
        return cast(str, await self._call("POST", "/_fake/clock/advance", {"seconds": seconds}))

    async def inject_rate_limit(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        count: int = 1,
        retry_after: float = 0.1,
        is_global: bool = False,
    ) -> None:
        body = {"method": method, "path": path, "count": count, "retry_after": retry_after, "is_global": is_global}
        await self._call("POST", "/_fake/faults/rate-limits", body)

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
        body = {"status": status, "code": code, "message": message, "method": method, "path": path, "count": count}
        await self._call("POST", "/_fake/faults/errors", body)

    async def inject_delay(
        self,
        *,
        seconds: float,
        method: str | None = None,
        path: str | None = None,
        multipart: bool | None = None,
        count: int = 1,
    ) -> None:
        body = {"seconds": seconds, "method": method, "path": path, "multipart": multipart, "count": count}
        await self._call("POST", "/_fake/faults/delays", body)

    async def held_requests(self) -> list[HeldRequestView]:
        return cast(list[HeldRequestView], await self._call("GET", "/_fake/held-requests"))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/_fake/faults")

    # --- rate limits ---------------------------------------------------------------------------------------------

    async def set_rate_limits(
        self, enabled: bool = True, *, overrides: Mapping[str, Sequence[float]] | None = None
    ) -> RateLimitsView:
        body = {"enabled": enabled, "overrides": {name: list(limit) for name, limit in (overrides or {}).items()}}
        return cast(RateLimitsView, await self._call("PUT", "/_fake/rate-limits", body))

    async def rate_limit_stats(self) -> RateLimitStatsView:
        return cast(RateLimitStatsView, await self._call("GET", "/_fake/rate-limits/stats"))

    # --- change notification -------------------------------------------------------------------------------------

    async def version(self) -> int:
        return cast(int, await self._call("GET", "/_fake/version"))

    async def wait_for_change(self, after: int, within: float) -> int:
        return cast(int, await self._call("GET", "/_fake/changes", query={"after": after, "within": within}))


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
