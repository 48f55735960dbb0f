"""What a test can do to the fake Discord and read back from it, the same in-process and over the control API.

`FakeDiscord` (in-process) and `FakeDiscordControl` (HTTP, for the standalone process) both implement the
primitives below; the wait helpers are built on them once, here, so both behave alike. A wait helper re-checks
its condition each time the fake's state changes (no polling interval, no blind sleeps) and raises
`TimeoutError` naming what it waited for.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

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

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
# The longest single wait for a change; a long poll over HTTP never outlives it.
MAX_CHANGE_WAIT = 5.0


class FakeDiscordDriver(ABC):
    """The control surface of the fake Discord. Ids are ints; views are plain dicts (see views.py)."""

    # --- the server ----------------------------------------------------------------------------------------------

    @abstractmethod
    async def info(self) -> InfoView:
        """Addresses to point discord.py at, and the bot's identity and token."""

    @abstractmethod
    async def reset(self) -> None:
        """Forget everything (guilds, messages, interactions, commands, sessions, faults) and reset the clock."""

    # --- building the world --------------------------------------------------------------------------------------

    @abstractmethod
    async def create_guild(
        self,
        name: str = "Test Guild",
        *,
        premium_tier: int = 0,
        locale: str = "en-US",
        owner_id: int | None = None,
        bot_installed: bool = True,
    ) -> GuildView:
        """A guild with @everyone, the bot (and its managed role) and an owner member who has every permission.

        The owner is a new user, or the existing user `owner_id` (a member of another guild, the application's owner).
        With `bot_installed=False` the guild did not install the bot: it is no member (no GUILD_CREATE, its REST
        routes for the guild's channels answer 403 and for the guild 404), and only user installs reach it.
        """

    @abstractmethod
    async def guild(self, guild_id: int) -> GuildView: ...

    @abstractmethod
    async def create_role(
        self, guild_id: int, name: str, *, permissions: int = 0, mentionable: bool = False
    ) -> RoleView: ...

    @abstractmethod
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
        """A channel; `bot_permissions` sets exactly what the bot may do in it, `upload_limit` its upload cap, `nsfw`
        whether it is age-restricted."""

    @abstractmethod
    async def channel(self, channel_id: int) -> ChannelView: ...

    @abstractmethod
    async def set_bot_permissions(self, channel_id: int, permissions: int | None) -> ChannelView:
        """Exactly these permissions for the bot in the channel (None: back to what its roles give)."""

    @abstractmethod
    async def set_channel_overwrite(
        self,
        channel_id: int,
        target_id: int,
        *,
        allow: int = 0,
        deny: int = 0,
        target_type: Literal["role", "member"] = "role",
    ) -> ChannelView: ...

    @abstractmethod
    async def remove_channel_overwrite(self, channel_id: int, target_id: int) -> ChannelView: ...

    @abstractmethod
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
        """A member starts a thread: public (from `message_id`, or from nothing), `private` (seen by its members,
        `member_ids`, and Manage Threads), or, in a forum channel (type 15), a post whose first message is
        `content`."""

    @abstractmethod
    async def add_thread_member(self, thread_id: int, user_id: int) -> ChannelView:
        """Someone adds the user (the bot, say) to a thread."""

    @abstractmethod
    async def remove_thread_member(self, thread_id: int, user_id: int) -> ChannelView: ...

    @abstractmethod
    async def set_thread_state(
        self, thread_id: int, *, archived: bool | None = None, locked: bool | None = None
    ) -> ChannelView:
        """A moderator (or Discord's auto-archive) archives or unarchives, locks or unlocks a thread."""

    @abstractmethod
    async def delete_channel(self, channel_id: int) -> ChannelView:
        """Someone deletes a channel or thread (a channel's threads go with it); 404 10003 from then on."""

    @abstractmethod
    async def set_upload_limit(self, channel_id: int, limit: int | None) -> ChannelView:
        """The channel's upload limit in bytes (None: the guild's, from its premium tier)."""

    @abstractmethod
    async def create_member(
        self,
        guild_id: int,
        username: str,
        *,
        role_ids: Sequence[int] = (),
        permissions: int | None = None,
        nick: str | None = None,
    ) -> MemberView:
        """A member; `permissions` gives them a role of their own with exactly those guild permissions."""

    @abstractmethod
    async def set_member_roles(self, guild_id: int, user_id: int, role_ids: Sequence[int]) -> MemberView: ...

    @abstractmethod
    async def member(self, guild_id: int, user_id: int) -> MemberView: ...

    @abstractmethod
    async def set_dms_open(self, user_id: int, open: bool) -> None:
        """Whether the user accepts DMs from the bot (default: open); closed, a DM fails with 403 50007."""

    @abstractmethod
    async def install_app(self, user_id: int, installed: bool = True) -> None:
        """The user installs the app on their account (a user install; default: not installed), or removes it. A
        command synced with user installs in its `integration_types` then reaches them wherever its `contexts` allow,
        and the bot may DM them without sharing a guild."""

    @abstractmethod
    async def create_private_channel(
        self, user_ids: Sequence[int], *, group: bool = True, name: str = ""
    ) -> ChannelView:
        """A group DM of these users (or, `group=False`, a DM between two of them): the bot is no member, so its
        channel routes answer 403, and only the users' installs of the app reach it (context 2)."""

    @abstractmethod
    async def dm_channel(self, user_id: int) -> ChannelView | None:
        """The bot's DM channel with the user (type 1), or None until the bot has opened one."""

    # --- what members do -----------------------------------------------------------------------------------------

    @abstractmethod
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
        """A member runs a slash command (`name` may be "group sub"); returns at once with the interaction.

        Options are typed from the command the bot synced (guild command first, then global), or guessed from the
        Python values when nothing was synced. `files` fills attachment options (type 11): option name ->
        (filename, bytes); the upload is served at a CDN URL and resolved in `data.resolved.attachments`. With
        `require_bot`, raises when no bot session would receive it.
        """

    @abstractmethod
    async def invoke_message_command(
        self, message_id: int, user_id: int, name: str, *, locale: str = "en-US", require_bot: bool = True
    ) -> InteractionView:
        """A member runs the message command `name` (Apps menu of a message): `data.target_id` is the message and
        `data.resolved.messages` holds it, attachments included."""

    @abstractmethod
    async def post_member_message(
        self, channel_id: int, user_id: int, content: str = "", files: Sequence[tuple[str, bytes]] = ()
    ) -> MessageView:
        """A member posts a message in a channel: text and files (filename, bytes), served at CDN URLs like any
        attachment. The member must be able to view the channel and send (and attach) there."""

    @abstractmethod
    async def submit_modal(
        self, interaction_id: int, values: Mapping[str, str | list[str]], *, locale: str = "en-US"
    ) -> InteractionView:
        """The member shown the modal that answered `interaction_id` submits it (`values`: custom_id -> text, or
        option values for a select); inputs left out keep their pre-filled value. Returns the MODAL_SUBMIT
        interaction. A submission the Discord client would not send (required input empty, text outside
        min/max length, unknown input) or a second one raises ControlError."""

    @abstractmethod
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
        """A member types in option `focused`; the bot's choices land in the interaction's `choices`."""

    @abstractmethod
    async def click_button(
        self, message_id: int, custom_id: str, user_id: int, *, locale: str = "en-US"
    ) -> InteractionView: ...

    @abstractmethod
    async def select(
        self, message_id: int, custom_id: str, user_id: int, values: Sequence[str], *, locale: str = "en-US"
    ) -> InteractionView: ...

    # --- reading back --------------------------------------------------------------------------------------------

    @abstractmethod
    async def interaction(self, interaction_id: int) -> InteractionView: ...

    @abstractmethod
    async def interactions(self) -> list[InteractionView]: ...

    @abstractmethod
    async def channel_messages(
        self, channel_id: int, *, include_ephemeral: bool = False, include_deleted: bool = False
    ) -> list[MessageView]:
        """The channel's messages, oldest first (public and present ones unless asked otherwise)."""

    @abstractmethod
    async def message(self, message_id: int) -> MessageView: ...

    @abstractmethod
    async def attachment_bytes(self, url: str) -> bytes:
        """The bytes served at an attachment's `url` or `proxy_url`."""

    @abstractmethod
    async def commands(self, guild_id: int | None = None) -> list[CommandView]:
        """The commands the bot synced: global ones, or one guild's."""

    @abstractmethod
    async def sessions(self) -> list[SessionView]: ...

    @abstractmethod
    async def requests(self, *, errors_only: bool = False) -> list[RequestView]:
        """Every REST request the fake answered, oldest first (with the status and Discord error code)."""

    # --- gateway control -----------------------------------------------------------------------------------------

    @abstractmethod
    async def reconnect(self, session_id: str | None = None) -> list[str]:
        """Send op 7 (reconnect) to connected sessions (all, or one); returns their ids."""

    @abstractmethod
    async def invalidate_session(self, session_id: str | None = None, *, resumable: bool = False) -> list[str]:
        """Send op 9 (invalid session); unless `resumable`, the session is over and the bot must IDENTIFY."""

    @abstractmethod
    async def drop_connection(self, session_id: str | None = None) -> list[str]:
        """Cut connections without a close frame; the sessions stay resumable."""

    @abstractmethod
    async def stall_connection(self, session_id: str | None = None) -> list[str]:
        """Stop delivering dispatches on the connections (kept, and replayed on RESUME)."""

    @abstractmethod
    async def set_recommended_shards(self, count: int) -> None:
        """The shard count `GET /gateway/bot` recommends (AutoShardedClient follows it)."""

    # --- time and faults -----------------------------------------------------------------------------------------

    @abstractmethod
    async def now(self) -> str: ...

    @abstractmethod
    async def advance_clock(self, seconds: float) -> str:
        """Move the fake's clock forward (interaction windows and token lifetimes follow it); returns the new now."""

    @abstractmethod
    async def inject_rate_limit(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        count: int = 1,
        retry_after: float = 0.1,
        is_global: bool = False,
    ) -> None:
        """Answer the next `count` matching REST requests with a 429 (`path`: a regex on the path after /api/v10)."""

    @abstractmethod
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
        """Answer the next `count` matching REST requests with this error."""

    @abstractmethod
    async def inject_delay(
        self,
        *,
        seconds: float,
        method: str | None = None,
        path: str | None = None,
        multipart: bool | None = None,
        count: int = 1,
    ) -> None:
        """Handle the next `count` matching REST requests as usual, then hold each reply `seconds` (the message
        exists; the client does not know yet). `multipart`: only requests that upload files (True) or not (False)."""

    @abstractmethod
    async def held_requests(self) -> list[HeldRequestView]:
        """The requests whose reply is being held back by `inject_delay` right now."""

    @abstractmethod
    async def clear_faults(self) -> None: ...

    # --- rate limits ---------------------------------------------------------------------------------------------

    @abstractmethod
    async def set_rate_limits(
        self, enabled: bool = True, *, overrides: Mapping[str, Sequence[float]] | None = None
    ) -> RateLimitsView:
        """Turn Discord's rate limits on or off, with Discord's numbers but for `overrides` (bucket kind ->
        `(count, seconds)`); every bucket starts empty. `reset()` goes back to how the fake was started."""

    @abstractmethod
    async def rate_limit_stats(self) -> RateLimitStatsView:
        """The REST requests seen (injected faults aside) and the 429s the rate limits sent, in all and by bucket."""

    # --- change notification -------------------------------------------------------------------------------------

    @abstractmethod
    async def version(self) -> int:
        """A counter that grows whenever the fake's state changes."""

    @abstractmethod
    async def wait_for_change(self, after: int, within: float) -> int:
        """Wait until the version passes `after` (at most `within` seconds); return the version."""

    # --- waiting (built on the primitives) -----------------------------------------------------------------------

    async def wait_for(
        self, check: Callable[[], Awaitable[T | None]], *, within: float = DEFAULT_TIMEOUT, what: str = "condition"
    ) -> T:
        """Re-run `check` after every change until it returns something other than None."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            version = await self.version()
            result = await check()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"fake Discord: gave up after {within}s waiting for {what}")
            await self.wait_for_change(version, min(remaining, MAX_CHANGE_WAIT))

    async def wait_for_channel_messages(
        self, channel_id: int, count: int = 1, *, within: float = DEFAULT_TIMEOUT, include_ephemeral: bool = False
    ) -> list[MessageView]:
        """The channel's messages once there are at least `count` of them."""

        async def check() -> list[MessageView] | None:
            messages = await self.channel_messages(channel_id, include_ephemeral=include_ephemeral)
            return messages if len(messages) >= count else None

        return await self.wait_for(check, within=within, what=f"{count} message(s) in channel {channel_id}")

    async def wait_for_message(
        self,
        message_id: int,
        predicate: Callable[[MessageView], bool],
        *,
        within: float = DEFAULT_TIMEOUT,
        what: str = "a change to the message",
    ) -> MessageView:
        async def check() -> MessageView | None:
            message = await self.message(message_id)
            return message if predicate(message) else None

        return await self.wait_for(check, within=within, what=f"{what} (message {message_id})")

    async def wait_for_response(self, interaction_id: int, *, within: float = DEFAULT_TIMEOUT) -> InteractionView:
        """The interaction once the bot has acknowledged it."""

        async def check() -> InteractionView | None:
            interaction = await self.interaction(interaction_id)
            return interaction if interaction["response"] is not None else None

        return await self.wait_for(check, within=within, what=f"a response to interaction {interaction_id}")

    async def wait_for_original(
        self,
        interaction_id: int,
        predicate: Callable[[MessageView], bool] = lambda message: not message["flags"] & (1 << 7),
        *,
        within: float = DEFAULT_TIMEOUT,
    ) -> MessageView:
        """The interaction's original response message once `predicate` holds (default: it is no longer loading)."""

        async def check() -> MessageView | None:
            original = (await self.interaction(interaction_id))["original_message"]
            return original if original is not None and predicate(original) else None

        return await self.wait_for(check, within=within, what=f"the original response of {interaction_id}")

    async def wait_for_modal(self, interaction_id: int, *, within: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The modal (`{custom_id, title, components}`) the bot answered the interaction with; then `submit_modal`."""

        async def check() -> dict[str, Any] | None:
            return (await self.interaction(interaction_id))["modal"]

        return await self.wait_for(check, within=within, what=f"a modal answering interaction {interaction_id}")

    async def wait_for_followups(
        self, interaction_id: int, count: int = 1, *, within: float = DEFAULT_TIMEOUT
    ) -> list[MessageView]:
        async def check() -> list[MessageView] | None:
            followups = (await self.interaction(interaction_id))["followups"]
            return followups if len(followups) >= count else None

        return await self.wait_for(check, within=within, what=f"{count} followup(s) of {interaction_id}")

    async def wait_for_sessions(self, count: int = 1, *, within: float = DEFAULT_TIMEOUT) -> list[SessionView]:
        """The connected, identified sessions once there are at least `count`."""

        async def check() -> list[SessionView] | None:
            live = [s for s in await self.sessions() if s["connected"] and s["ready"]]
            return live if len(live) >= count else None

        return await self.wait_for(check, within=within, what=f"{count} connected gateway session(s)")

    async def wait_for_resume(
        self, session_id: str, resumes: int = 1, *, within: float = DEFAULT_TIMEOUT
    ) -> SessionView:
        """The session once it has resumed `resumes` times and is connected again."""

        async def check() -> SessionView | None:
            for session in await self.sessions():
                if session["id"] == session_id and session["resumes"] >= resumes and session["connected"]:
                    return session
            return None

        return await self.wait_for(check, within=within, what=f"session {session_id} to resume")

    async def wait_for_requests(
        self,
        predicate: Callable[[RequestView], bool],
        count: int = 1,
        *,
        within: float = DEFAULT_TIMEOUT,
        what: str = "requests",
    ) -> list[RequestView]:
        async def check() -> list[RequestView] | None:
            matching = [request for request in await self.requests() if predicate(request)]
            return matching if len(matching) >= count else None

        return await self.wait_for(check, within=within, what=f"{count} {what}")

    async def autocomplete_choices(
        self,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        within: float = DEFAULT_TIMEOUT,
    ) -> list[dict[str, Any]]:
        """Ask autocomplete and return the choices the bot answered."""
        interaction = await self.autocomplete(channel_id, user_id, name, options, focused)
        answered = await self.wait_for_response(interaction["id"], within=within)
        return answered["choices"] or []
