"""Discord's REST API v10 as a slash-command bot uses it, plus the CDN that serves attachments back.

Every JSON reply carries `Content-Type: application/json` exactly (discord.py treats anything else as text).
Unknown routes answer Discord's 404 JSON; nothing succeeds silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.discord import errors
from tests.fakes.discord.clock import iso
from tests.fakes.discord.errors import ApiError
from tests.fakes.discord.gateway import Gateway
from tests.fakes.discord.models import Guild, Upload
from tests.fakes.discord.permissions import Permission
from tests.fakes.discord.ratelimits import RateLimiter
from tests.fakes.discord.views import HeldRequestView, RequestView
from tests.fakes.discord.world import World

log = logging.getLogger(__name__)

API_PREFIX = re.compile(r"^/api/v\d+")
FILE_FIELD = re.compile(r"^files\[(\d+)\]$")
# Routes a bot reaches with an interaction token instead of its bot token.
TOKEN_ROUTES = ("/interactions/", "/webhooks/")
REQUEST_LOG_SIZE = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON reply whose Content-Type is exactly `application/json` (no charset)."""
    all_headers = {"Content-Type": "application/json"}
    if headers:
        all_headers.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


def error_response(error: ApiError) -> web.Response:
    return json_response(error.body(), status=error.status)


@dataclass
class Fault:
    """An injected failure for the next `remaining` requests matching `method` and the `path` regex."""

    method: str | None
    path: re.Pattern[str] | None
    remaining: int
    status: int
    code: int
    message: str
    retry_after: float = 0.0
    is_global: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path.search(path) is not None

    def response(self) -> web.Response:
        if self.status != 429:
            return json_response({"message": self.message, "code": self.code}, status=self.status)
        headers = {
            # discord.py treats a 429 without `Via` (or with a text body) as a Cloudflare ban.
            "Via": "1.1 google",
            "Retry-After": str(max(1, math.ceil(self.retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + self.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.retry_after:.3f}",
            "X-RateLimit-Bucket": secrets.token_hex(16),
            "X-RateLimit-Scope": "global" if self.is_global else "user",
        }
        if self.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": self.is_global}
        return json_response(body, status=429, headers=headers)


@dataclass
class Delay:
    """The next `remaining` requests matching `method`, the `path` regex and `multipart` (whether they upload files;
    None: either) are handled as usual, then their reply is held `seconds`: the work is done, the client just hears
    about it late (or never, if it dies meanwhile)."""

    method: str | None
    path: re.Pattern[str] | None
    remaining: int
    seconds: float
    multipart: bool | None = None

    def matches(self, method: str, path: str, multipart: bool) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.multipart is not None and self.multipart != multipart:
            return False
        return self.path is None or self.path.search(path) is not None


def _is_multipart(request: web.Request) -> bool:
    return request.content_type.startswith("multipart/")


class RestApi:
    """The `/api/v10/...` routes, the CDN routes and the middleware that logs, injects faults, checks auth and
    applies the rate limits."""

    def __init__(self, world: World, gateway: Gateway, limiter: RateLimiter) -> None:
        self.world = world
        self.gateway = gateway
        self.limiter = limiter
        self.faults: list[Fault] = []
        self.delays: list[Delay] = []
        self.held: list[HeldRequestView] = []
        self.requests: deque[RequestView] = deque(maxlen=REQUEST_LOG_SIZE)

    def clear(self) -> None:
        self.faults.clear()
        self.delays.clear()
        self.requests.clear()

    # --- middleware ----------------------------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        match = API_PREFIX.match(request.path)
        if match is None:
            try:
                return await handler(request)
            except web.HTTPMethodNotAllowed:
                return error_response(errors.method_not_allowed())
            except web.HTTPNotFound:
                return error_response(errors.not_found_route())
        path = request.path[match.end() :] or "/"
        delay = self._take_delay(request.method, path, _is_multipart(request))
        fault = self._take_fault(request.method, path)
        if fault is not None:
            log.info("injecting %s for %s %s", fault.status, request.method, path)
            response: web.StreamResponse = fault.response()
        else:
            response = await self._api_response(request, handler, path)
        if delay is not None:
            await self._hold(request, path, delay)
        self._log(request, path, response, injected=fault is not None)
        return response

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _take_delay(self, method: str, path: str, multipart: bool) -> Delay | None:
        for delay in self.delays:
            if delay.matches(method, path, multipart):
                delay.remaining -= 1
                if delay.remaining <= 0:
                    self.delays.remove(delay)
                return delay
        return None

    async def _hold(self, request: web.Request, path: str, delay: Delay) -> None:
        """Keep a handled request's reply back for `delay.seconds`, listed in `held` meanwhile."""
        held = HeldRequestView(
            method=request.method,
            path=path,
            multipart=_is_multipart(request),
            since=iso(self.world.clock.now()),
        )
        self.held.append(held)
        log.info("holding the reply to %s %s for %.2f s", request.method, path, delay.seconds)
        self.world.touch()
        try:
            await asyncio.sleep(delay.seconds)
        finally:
            self.held.remove(held)
            self.world.touch()

    async def _api_response(self, request: web.Request, handler: Handler, path: str) -> web.StreamResponse:
        if not path.startswith(TOKEN_ROUTES) and request.headers.get("Authorization") != f"Bot {self.world.token}":
            self.limiter.observe(None)
            return error_response(errors.unauthorized())
        verdict = self.limiter.observe(self.limiter.classify(request))
        if verdict is None:
            return await self._handle(request, handler, path)
        if verdict.refusal is not None:
            # Refused before the handler runs: a rate-limited request changes nothing.
            log.info("rate limited: %s %s", request.method, path)
            return verdict.refusal
        response = await self._handle(request, handler, path)
        response.headers.update(verdict.headers)
        return response

    async def _handle(self, request: web.Request, handler: Handler, path: str) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            log.info("%s %s -> %s %s %s", request.method, path, exc.status, exc.code, exc.message)
            return error_response(exc)
        except web.HTTPMethodNotAllowed:
            return error_response(errors.method_not_allowed())
        except web.HTTPNotFound:
            log.warning("unknown Discord route: %s %s", request.method, path)
            return error_response(errors.not_found_route())

    def _log(self, request: web.Request, path: str, response: web.StreamResponse, *, injected: bool) -> None:
        code: int | None = None
        if isinstance(response, web.Response) and response.status >= 400 and isinstance(response.body, bytes):
            try:
                code = json.loads(response.body).get("code")
            except (ValueError, AttributeError):
                code = None
        self.requests.append(
            RequestView(
                method=request.method,
                path=path,
                query=request.query_string,
                status=response.status,
                code=code,
                at=iso(self.world.clock.now()),
                injected=injected,
            )
        )
        self.world.touch()

    # --- routes --------------------------------------------------------------------------------------------------

    def register(self, app: web.Application) -> None:
        api = "/api/v{version:\\d+}"
        app_commands = api + "/applications/{application_id:\\d+}/commands"
        guild_commands = api + "/applications/{application_id:\\d+}/guilds/{guild_id:\\d+}/commands"
        messages = api + "/channels/{channel_id:\\d+}/messages"
        webhook = api + "/webhooks/{application_id:\\d+}/{token}"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", api + "/gateway", self.get_gateway),
            ("GET", api + "/gateway/bot", self.get_gateway_bot),
            ("GET", api + "/users/@me", self.get_me),
            ("GET", api + "/users/{user_id:\\d+}", self.get_user),
            ("POST", api + "/users/@me/channels", self.create_dm),
            ("GET", api + "/oauth2/applications/@me", self.get_application),
            ("GET", api + "/applications/@me", self.get_application),
            ("GET", app_commands, self.list_commands),
            ("PUT", app_commands, self.overwrite_commands),
            ("POST", app_commands, self.upsert_command),
            ("GET", app_commands + "/{command_id:\\d+}", self.get_command),
            ("DELETE", app_commands + "/{command_id:\\d+}", self.delete_command),
            ("GET", guild_commands, self.list_commands),
            ("PUT", guild_commands, self.overwrite_commands),
            ("POST", guild_commands, self.upsert_command),
            ("GET", guild_commands + "/{command_id:\\d+}", self.get_command),
            ("DELETE", guild_commands + "/{command_id:\\d+}", self.delete_command),
            ("GET", api + "/applications/{application_id:\\d+}/emojis", self.list_emojis),
            ("GET", api + "/applications/{application_id:\\d+}/entitlements", self.list_entitlements),
            ("GET", api + "/guilds/{guild_id:\\d+}", self.get_guild),
            ("GET", api + "/guilds/{guild_id:\\d+}/channels", self.get_guild_channels),
            ("GET", api + "/guilds/{guild_id:\\d+}/roles", self.get_guild_roles),
            ("GET", api + "/guilds/{guild_id:\\d+}/members", self.list_members),
            ("GET", api + "/guilds/{guild_id:\\d+}/members/{user_id:\\d+}", self.get_member),
            ("GET", api + "/channels/{channel_id:\\d+}", self.get_channel),
            ("POST", api + "/channels/{channel_id:\\d+}/typing", self.typing),
            ("PATCH", api + "/channels/{channel_id:\\d+}", self.edit_channel),
            ("DELETE", api + "/channels/{channel_id:\\d+}", self.delete_channel),
            ("POST", api + "/channels/{channel_id:\\d+}/threads", self.start_thread),
            ("POST", messages + "/{message_id:\\d+}/threads", self.start_thread_from_message),
            ("GET", messages, self.list_messages),
            ("POST", messages, self.create_message),
            ("GET", messages + "/{message_id:\\d+}", self.get_message),
            ("PATCH", messages + "/{message_id:\\d+}", self.edit_message),
            ("DELETE", messages + "/{message_id:\\d+}", self.delete_message),
            ("POST", api + "/interactions/{interaction_id:\\d+}/{token}/callback", self.interaction_callback),
            ("POST", webhook, self.execute_webhook),
            ("GET", webhook + "/messages/{message_ref:(@original|\\d+)}", self.get_webhook_message),
            ("PATCH", webhook + "/messages/{message_ref:(@original|\\d+)}", self.edit_webhook_message),
            ("DELETE", webhook + "/messages/{message_ref:(@original|\\d+)}", self.delete_webhook_message),
            ("GET", "/cdn/attachments/{channel_id:\\d+}/{attachment_id:\\d+}/{filename}", self.attachment),
            ("GET", "/media/attachments/{channel_id:\\d+}/{attachment_id:\\d+}/{filename}", self.attachment),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)

    # --- login and gateway ---------------------------------------------------------------------------------------

    async def get_gateway(self, request: web.Request) -> web.StreamResponse:
        return json_response({"url": self.gateway.url})

    async def get_gateway_bot(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "url": self.gateway.url,
                "shards": self.world.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def get_me(self, request: web.Request) -> web.StreamResponse:
        me = self.world.bot.payload() | {"verified": True, "mfa_enabled": False, "flags": 0, "email": None}
        return json_response(me)

    async def get_user(self, request: web.Request) -> web.StreamResponse:
        user = self.world.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise errors.unknown_user()
        return json_response(user.payload())

    async def create_dm(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise errors.invalid_json()
        return json_response(self.world.open_dm(body.get("recipient_id")).payload())

    async def get_application(self, request: web.Request) -> web.StreamResponse:
        world = self.world
        return json_response(
            {
                "id": str(world.application_id),
                "name": world.bot.username,
                "icon": None,
                "description": "",
                "summary": "",
                "rpc_origins": [],
                "bot_public": True,
                "bot_require_code_grant": False,
                "bot": world.bot.payload(),
                "owner": world.app_owner.payload(),
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(world.guilds),
            }
        )

    # --- commands ------------------------------------------------------------------------------------------------

    @staticmethod
    def _scope(request: web.Request) -> tuple[int, int | None]:
        guild_id = request.match_info.get("guild_id")
        return int(request.match_info["application_id"]), int(guild_id) if guild_id else None

    async def list_commands(self, request: web.Request) -> web.StreamResponse:
        application_id, guild_id = self._scope(request)
        return json_response([c.payload() for c in self.world.scoped_commands(application_id, guild_id)])

    async def overwrite_commands(self, request: web.Request) -> web.StreamResponse:
        application_id, guild_id = self._scope(request)
        commands = self.world.overwrite_commands(application_id, guild_id, await read_json(request))
        return json_response([c.payload() for c in commands])

    async def upsert_command(self, request: web.Request) -> web.StreamResponse:
        application_id, guild_id = self._scope(request)
        command = self.world.upsert_command(application_id, guild_id, await read_json(request))
        return json_response(command.payload(), status=201)

    async def get_command(self, request: web.Request) -> web.StreamResponse:
        application_id, guild_id = self._scope(request)
        command_id = int(request.match_info["command_id"])
        for command in self.world.scoped_commands(application_id, guild_id):
            if command.id == command_id:
                return json_response(command.payload())
        raise errors.unknown_command()

    async def delete_command(self, request: web.Request) -> web.StreamResponse:
        application_id, guild_id = self._scope(request)
        command_id = int(request.match_info["command_id"])
        remaining = [c.raw for c in self.world.scoped_commands(application_id, guild_id) if c.id != command_id]
        if len(remaining) == len(self.world.scoped_commands(application_id, guild_id)):
            raise errors.unknown_command()
        self.world.overwrite_commands(application_id, guild_id, remaining)
        return web.Response(status=204)

    async def list_emojis(self, request: web.Request) -> web.StreamResponse:
        return json_response({"items": []})

    async def list_entitlements(self, request: web.Request) -> web.StreamResponse:
        return json_response([])

    # --- guilds --------------------------------------------------------------------------------------------------

    def _guild(self, request: web.Request) -> Guild:
        guild = self.world.guilds.get(int(request.match_info["guild_id"]))
        if guild is None or not guild.bot_installed:
            # A guild the bot is no member of is unknown to it, as on Discord.
            raise errors.unknown_guild()
        return guild

    async def get_guild(self, request: web.Request) -> web.StreamResponse:
        guild = self._guild(request)
        data = self.world.guild_payload(guild)
        if request.query.get("with_counts") in ("1", "true", "True"):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return json_response(data)

    async def get_guild_channels(self, request: web.Request) -> web.StreamResponse:
        guild = self._guild(request)
        return json_response([self.world.channels[channel_id].payload() for channel_id in guild.channel_ids])

    async def get_guild_roles(self, request: web.Request) -> web.StreamResponse:
        guild = self._guild(request)
        return json_response([role.payload() for role in guild.roles.values()])

    async def list_members(self, request: web.Request) -> web.StreamResponse:
        guild = self._guild(request)
        limit = int(request.query.get("limit", "1"))
        after = int(request.query.get("after", "0"))
        members = sorted((m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id)
        return json_response([member.payload() for member in members[:limit]])

    async def get_member(self, request: web.Request) -> web.StreamResponse:
        guild = self._guild(request)
        member = guild.members.get(int(request.match_info["user_id"]))
        if member is None:
            raise errors.unknown_member()
        return json_response(member.payload())

    # --- channels and messages -----------------------------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.StreamResponse:
        channel = self.world.rest_channel(int(request.match_info["channel_id"]))
        return json_response(channel.payload())

    async def edit_channel(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise errors.invalid_json()
        channel = self.world.rest_edit_channel(int(request.match_info["channel_id"]), body)
        return json_response(self.world.thread_payload_for_bot(channel) if channel.is_thread else channel.payload())

    async def delete_channel(self, request: web.Request) -> web.StreamResponse:
        channel = self.world.rest_delete_channel(int(request.match_info["channel_id"]))
        return json_response(channel.payload())

    async def start_thread(self, request: web.Request) -> web.StreamResponse:
        body, uploads = await read_message(request)
        thread, message = self.world.rest_start_thread(int(request.match_info["channel_id"]), body, uploads)
        data = self.world.thread_payload_for_bot(thread)
        if message is not None:
            data["message"] = self.world.message_payload(message)
        return json_response(data, status=201)

    async def start_thread_from_message(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise errors.invalid_json()
        thread = self.world.rest_start_thread_from_message(
            int(request.match_info["channel_id"]), int(request.match_info["message_id"]), body
        )
        return json_response(self.world.thread_payload_for_bot(thread), status=201)

    async def typing(self, request: web.Request) -> web.StreamResponse:
        channel = self.world.rest_channel(int(request.match_info["channel_id"]))
        self.world.require_permissions(channel, Permission.SEND_MESSAGES)
        return web.Response(status=204)

    async def list_messages(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        messages = self.world.rest_list_messages(
            int(request.match_info["channel_id"]),
            limit=int(query.get("limit", "50")),
            before=_optional_int(query.get("before")),
            after=_optional_int(query.get("after")),
            around=_optional_int(query.get("around")),
        )
        return json_response([self.world.message_payload(message) for message in messages])

    async def create_message(self, request: web.Request) -> web.StreamResponse:
        body, uploads = await read_message(request)
        message = self.world.rest_create_message(int(request.match_info["channel_id"]), body, uploads)
        return json_response(self.world.message_payload(message))

    async def get_message(self, request: web.Request) -> web.StreamResponse:
        message = self.world.rest_get_message(
            int(request.match_info["channel_id"]), int(request.match_info["message_id"])
        )
        return json_response(self.world.message_payload(message))

    async def edit_message(self, request: web.Request) -> web.StreamResponse:
        body, uploads = await read_message(request)
        message = self.world.rest_edit_message(
            int(request.match_info["channel_id"]), int(request.match_info["message_id"]), body, uploads
        )
        return json_response(self.world.message_payload(message))

    async def delete_message(self, request: web.Request) -> web.StreamResponse:
        self.world.rest_delete_message(int(request.match_info["channel_id"]), int(request.match_info["message_id"]))
        return web.Response(status=204)

    # --- interactions and their webhooks -------------------------------------------------------------------------

    async def interaction_callback(self, request: web.Request) -> web.StreamResponse:
        body, uploads = await read_message(request)
        interaction, message = self.world.callback(
            int(request.match_info["interaction_id"]), request.match_info["token"], body, uploads
        )
        if request.query.get("with_response") in ("1", "true", "True"):
            return json_response(self.world.callback_body(interaction, message))
        return web.Response(status=204)

    async def execute_webhook(self, request: web.Request) -> web.StreamResponse:
        body, uploads = await read_message(request)
        message = self.world.followup(
            int(request.match_info["application_id"]), request.match_info["token"], body, uploads
        )
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(self.world.message_payload(message))
        return web.Response(status=204)

    async def get_webhook_message(self, request: web.Request) -> web.StreamResponse:
        _, message = self.world.webhook_message(
            int(request.match_info["application_id"]), request.match_info["token"], request.match_info["message_ref"]
        )
        return json_response(self.world.message_payload(message))

    async def edit_webhook_message(self, request: web.Request) -> web.StreamResponse:
        body, uploads = await read_message(request)
        message = self.world.edit_webhook_message(
            int(request.match_info["application_id"]),
            request.match_info["token"],
            request.match_info["message_ref"],
            body,
            uploads,
        )
        return json_response(self.world.message_payload(message))

    async def delete_webhook_message(self, request: web.Request) -> web.StreamResponse:
        self.world.delete_webhook_message(
            int(request.match_info["application_id"]), request.match_info["token"], request.match_info["message_ref"]
        )
        return web.Response(status=204)

    # --- CDN -----------------------------------------------------------------------------------------------------

    async def attachment(self, request: web.Request) -> web.StreamResponse:
        attachment = self.world.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.channel_id != int(request.match_info["channel_id"]):
            return web.Response(status=404, text="Not Found")
        return web.Response(
            body=attachment.data,
            headers={"Content-Type": attachment.content_type or "application/octet-stream"},
        )


def _optional_int(value: str | None) -> int | None:
    return int(value) if value else None


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise errors.invalid_json() from None


async def read_message(request: web.Request) -> tuple[dict[str, Any], list[Upload]]:
    """A message body: JSON, or multipart with `payload_json` and `files[n]` parts."""
    if not request.content_type.startswith("multipart/"):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise errors.invalid_json()
        return body, []
    reader = await request.multipart()
    body = {}
    uploads: list[Upload] = []
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            continue
        name = part.name or ""
        if name == "payload_json":
            try:
                body = json.loads(await part.text())
            except ValueError:
                raise errors.invalid_json() from None
        elif part.filename is not None:
            index_match = FILE_FIELD.match(name)
            index = int(index_match.group(1)) if index_match else len(uploads)
            uploads.append(Upload(index=index, filename=part.filename, data=await part.read(decode=False)))
    if not isinstance(body, dict):
        raise errors.invalid_json()
    return body, uploads
