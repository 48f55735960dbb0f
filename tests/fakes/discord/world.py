"""The fake's state and Discord's behaviour on it: guilds, channels, members, messages, interactions, commands.

Everything here is synchronous; the REST layer, the gateway and the control API call into it. REST-facing methods
raise `ApiError` (what Discord would answer); control-facing methods raise `ControlError`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import io
import logging
import mimetypes
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import quote

from PIL import Image, UnidentifiedImageError

from tests.fakes.discord import errors, rules
from tests.fakes.discord.clock import Clock, Snowflakes, iso
from tests.fakes.discord.errors import ControlError
from tests.fakes.discord.models import (
    CHANNEL_DM,
    CHANNEL_FORUM,
    CHANNEL_GROUP_DM,
    CHANNEL_PRIVATE_THREAD,
    CHANNEL_PUBLIC_THREAD,
    DM_UPLOAD_LIMIT,
    OVERWRITE_MEMBER,
    OVERWRITE_ROLE,
    Attachment,
    Channel,
    Command,
    Guild,
    Interaction,
    Member,
    Message,
    Overwrite,
    Pings,
    Response,
    Role,
    Upload,
    User,
)
from tests.fakes.discord.permissions import (
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    DM_APP_PERMISSIONS,
    DM_PERMISSIONS,
    Permission,
    apply_overwrites,
    has,
)

log = logging.getLogger(__name__)

# As long as a real bot token (three dot-separated parts), so the bot's settings accept it.
DEFAULT_TOKEN = "ZmFrZS1kaXNjb3JkLWJvdA.RkFLRQ.fake-discord-bot-token-for-tests-0123456789"

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12

RESPONSE_WINDOW = timedelta(seconds=3)
TOKEN_LIFETIME = timedelta(minutes=15)
NONCE_WINDOW = timedelta(minutes=5)

# Interaction types and callback types (Discord's numbering).
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE},
}

# Where an interaction happened (its `context`).
CONTEXT_GUILD, CONTEXT_BOT_DM, CONTEXT_PRIVATE_CHANNEL = 0, 1, 2
# Who installed the app that an interaction runs through (`integration_types`, keys of
# `authorizing_integration_owners`).
GUILD_INSTALL, USER_INSTALL = 0, 1

# Message types.
MESSAGE_DEFAULT = 0
MESSAGE_REPLY = 19
MESSAGE_CHAT_INPUT_COMMAND = 20

# Command option types.
OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP, OPT_STRING, OPT_INTEGER, OPT_BOOLEAN = 1, 2, 3, 4, 5
OPT_USER, OPT_CHANNEL, OPT_ROLE, OPT_MENTIONABLE, OPT_NUMBER, OPT_ATTACHMENT = 6, 7, 8, 9, 10, 11

# Application command types.
COMMAND_CHAT_INPUT, COMMAND_USER, COMMAND_MESSAGE = 1, 2, 3

GUILD_WORKER_BITS = 1 << 17

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


class Dispatcher(Protocol):
    """Sends a gateway dispatch to the sessions that should see it; returns their session ids."""

    def __call__(self, event: str, payload: dict[str, Any], *, guild_id: int | None, intent: int | None) -> list[str]:
        """Dispatch `event` to every live session covering `guild_id` whose intents include `intent`.

        `guild_id=None` is an event outside any guild (a DM), which Discord sends to shard 0 only.
        """
        ...


class World:
    """The fake Discord's whole state, seen by one bot application."""

    def __init__(self, *, token: str = DEFAULT_TOKEN, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.ids = Snowflakes(self.clock)
        self.token = token
        self.http_base_url = ""
        self.application_id = self.ids.next()
        self.bot = User(id=self.application_id, username="fake-bot", bot=True)
        self.app_owner = User(id=self.ids.next(), username="app-owner")
        self.recommended_shards = 1
        self.dispatch: Dispatcher | None = None
        self.version = 0
        self._changed: asyncio.Event | None = None
        self.clear()

    def clear(self) -> None:
        """Forget every guild, message, interaction and command (the bot's identity stays)."""
        self.users: dict[int, User] = {self.bot.id: self.bot, self.app_owner.id: self.app_owner}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.channel_messages: dict[int, list[int]] = {}
        # The latest message per (channel id, nonce): a nonce lookup must not scan a busy channel's history.
        self.nonce_messages: dict[tuple[int, str], int] = {}
        # The bot's DM channel with each user (user id -> channel id): Discord keeps one per user.
        self.dm_channel_ids: dict[int, int] = {}
        self.app_owner.dms_open = True
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, Interaction] = {}
        self.interactions_by_token: dict[str, Interaction] = {}
        self.commands: dict[int, Command] = {}
        self.recommended_shards = 1
        self._next_guild_ms = self.ids.now_ms()
        self.touch()

    # --- change notification -------------------------------------------------------------------------------------

    def touch(self) -> None:
        """Record that something changed, waking every `wait_for_change` caller."""
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_for_change(self, after: int, within: float) -> int:
        """Wait until the version passes `after` (or `within` seconds); return the current version."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.version <= after:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if self._changed is None:
                self._changed = asyncio.Event()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        return self.version

    def _emit(self, event: str, payload: dict[str, Any], *, guild_id: int | None, intent: int | None) -> list[str]:
        if self.dispatch is None:
            return []
        guild = self.guilds.get(guild_id) if guild_id is not None else None
        if guild is not None and not guild.bot_installed and event != "INTERACTION_CREATE":
            # The bot is no member: of that guild it hears only the interactions of its users' installs.
            return []
        return self.dispatch(event, payload, guild_id=guild_id, intent=intent)

    # --- lookups -------------------------------------------------------------------------------------------------

    def guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise ControlError(f"no guild {guild_id}", 404) from None

    def channel(self, channel_id: int) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise ControlError(f"no channel {channel_id}", 404) from None

    def member(self, guild_id: int, user_id: int) -> Member:
        try:
            return self.guild(guild_id).members[user_id]
        except KeyError:
            raise ControlError(f"no member {user_id} in guild {guild_id}", 404) from None

    def message(self, message_id: int) -> Message:
        try:
            return self.messages[message_id]
        except KeyError:
            raise ControlError(f"no message {message_id}", 404) from None

    def interaction(self, interaction_id: int) -> Interaction:
        try:
            return self.interactions[interaction_id]
        except KeyError:
            raise ControlError(f"no interaction {interaction_id}", 404) from None

    def upload_limit(self, channel: Channel) -> int:
        if channel.upload_limit is not None:
            return channel.upload_limit
        if channel.guild_id is None:
            return DM_UPLOAD_LIMIT
        return self.guilds[channel.guild_id].upload_limit

    def guild_of(self, channel: Channel) -> Guild | None:
        """The channel's guild; None for a DM."""
        return self.guilds[channel.guild_id] if channel.guild_id is not None else None

    # --- permissions ---------------------------------------------------------------------------------------------

    def guild_permissions(self, guild: Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        if member is None:
            return 0
        perms = guild.roles[guild.id].permissions
        for role_id in member.role_ids:
            role = guild.roles.get(role_id)
            if role is not None:
                perms |= role.permissions
        if perms & Permission.ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def channel_permissions(self, channel: Channel, user_id: int) -> int:
        guild = self.guild_of(channel)
        if guild is None:
            if channel.is_private_channel:
                return DM_PERMISSIONS if any(user.id == user_id for user in channel.recipients) else 0
            assert channel.recipient is not None
            return DM_PERMISSIONS if user_id in (self.bot.id, channel.recipient.id) else 0
        if user_id == self.bot.id and not guild.bot_installed:
            return 0
        if channel.is_thread:
            return self.thread_permissions(channel, user_id)
        base = self.guild_permissions(guild, user_id)
        if base == ALL_PERMISSIONS:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        role_ids = set(member.role_ids) if member else set()
        everyone = channel.overwrites.get(guild.id)
        roles = [
            (ow.allow, ow.deny)
            for ow in channel.overwrites.values()
            if ow.type == OVERWRITE_ROLE and ow.id in role_ids and ow.id != guild.id
        ]
        own = channel.overwrites.get(user_id)
        return apply_overwrites(
            base,
            everyone=(everyone.allow, everyone.deny) if everyone else None,
            roles=roles,
            member=(own.allow, own.deny) if own and own.type == OVERWRITE_MEMBER else None,
        )

    def bot_permissions(self, channel: Channel) -> int:
        return self.channel_permissions(channel, self.bot.id)

    def thread_permissions(
        self, thread: Channel, user_id: int, *, sends: int = Permission.SEND_MESSAGES_IN_THREADS
    ) -> int:
        """A thread has no overwrites of its own: its parent's permissions, where Send Messages in Threads (not Send
        Messages) carries the implicit ones; a private thread is seen only by its members and by Manage Threads."""
        parent = self.channels[thread.parent_id or 0]
        guild = self.guilds[thread.guild_id or 0]
        base = self.guild_permissions(guild, user_id)
        if base == ALL_PERMISSIONS:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        role_ids = set(member.role_ids) if member else set()
        everyone = parent.overwrites.get(guild.id)
        own = parent.overwrites.get(user_id)
        perms = apply_overwrites(
            base,
            everyone=(everyone.allow, everyone.deny) if everyone else None,
            roles=[
                (ow.allow, ow.deny)
                for ow in parent.overwrites.values()
                if ow.type == OVERWRITE_ROLE and ow.id in role_ids and ow.id != guild.id
            ],
            member=(own.allow, own.deny) if own and own.type == OVERWRITE_MEMBER else None,
            sends=sends,
        )
        if (
            thread.type == CHANNEL_PRIVATE_THREAD
            and user_id not in thread.thread_member_ids
            and not perms & Permission.MANAGE_THREADS
        ):
            return 0
        return perms

    def require_permissions(self, channel: Channel, wanted: int) -> None:
        perms = self.bot_permissions(channel)
        if not perms & Permission.VIEW_CHANNEL:
            raise errors.missing_access()
        if not has(perms, wanted):
            raise errors.missing_permissions()

    # --- building the world (control API) ------------------------------------------------------------------------

    def create_guild(
        self,
        name: str,
        *,
        premium_tier: int = 0,
        owner_id: int | None = None,
        locale: str = "en-US",
        bot_installed: bool = True,
    ) -> Guild:
        now = self.clock.now()
        # Consecutive guilds get consecutive milliseconds, so the k-th guild lands on shard k % shard_count.
        # Worker bits of 1 keep these ids apart from the generator's, whose low bits count from 0.
        guild_id = (self._next_guild_ms << 22) | GUILD_WORKER_BITS
        self._next_guild_ms += 1
        if owner_id is None:
            owner = User(id=self.ids.next(), username=f"owner-of-{name}".lower().replace(" ", "-"))
            self.users[owner.id] = owner
        else:
            owner = self._user(owner_id)
        guild = Guild(
            id=guild_id, name=name, owner_id=owner.id, premium_tier=premium_tier, created_at=now, locale=locale
        )
        guild.roles[guild_id] = Role(
            id=guild_id, guild_id=guild_id, name="@everyone", permissions=DEFAULT_EVERYONE_PERMISSIONS
        )
        bot_role = Role(
            id=self.ids.next(),
            guild_id=guild_id,
            name=self.bot.username,
            permissions=DEFAULT_BOT_PERMISSIONS,
            position=1,
            managed=True,
            bot_id=self.bot.id,
        )
        guild.roles[bot_role.id] = bot_role
        guild.bot_role_id = bot_role.id
        guild.bot_installed = bot_installed
        if bot_installed:
            guild.members[self.bot.id] = Member(user=self.bot, guild_id=guild_id, role_ids=[bot_role.id], joined_at=now)
        guild.members[owner.id] = Member(user=owner, guild_id=guild_id, role_ids=[], joined_at=now)
        self.guilds[guild_id] = guild
        self.touch()
        if bot_installed:
            self._emit("GUILD_CREATE", self.guild_create_payload(guild), guild_id=guild_id, intent=INTENT_GUILDS)
        return guild

    def _user(self, user_id: int) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise ControlError(f"no user {user_id}", 404) from None

    def create_role(self, guild_id: int, name: str, *, permissions: int = 0, mentionable: bool = False) -> Role:
        guild = self.guild(guild_id)
        role = Role(
            id=self.ids.next(),
            guild_id=guild_id,
            name=name,
            permissions=permissions,
            position=len(guild.roles),
            mentionable=mentionable,
        )
        guild.roles[role.id] = role
        self.touch()
        self._emit(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild_id), "role": role.payload()},
            guild_id=guild_id,
            intent=INTENT_GUILDS,
        )
        return role

    def create_channel(
        self,
        guild_id: int,
        name: str,
        *,
        channel_type: int = 0,
        topic: str | None = None,
        upload_limit: int | None = None,
        bot_permissions: int | None = None,
        nsfw: bool = False,
    ) -> Channel:
        guild = self.guild(guild_id)
        channel = Channel(
            id=self.ids.next(),
            guild_id=guild_id,
            name=name,
            type=channel_type,
            position=len(guild.channel_ids),
            topic=topic,
            upload_limit=upload_limit,
            nsfw=nsfw,
        )
        if bot_permissions is not None:
            channel.overwrites[self.bot.id] = _exact_overwrite(self.bot.id, bot_permissions)
        guild.channel_ids.append(channel.id)
        self.channels[channel.id] = channel
        self.channel_messages[channel.id] = []
        self.touch()
        self._emit("CHANNEL_CREATE", channel.payload(), guild_id=guild_id, intent=INTENT_GUILDS)
        return channel

    def _guild_channel(self, channel_id: int) -> Channel:
        channel = self.channel(channel_id)
        if channel.is_dm:
            raise ControlError(f"channel {channel_id} is a DM: it has no permission overwrites", 409)
        return channel

    def set_overwrite(self, channel_id: int, target_id: int, *, kind: int, allow: int, deny: int) -> Channel:
        channel = self._guild_channel(channel_id)
        channel.overwrites[target_id] = Overwrite(id=target_id, type=kind, allow=allow, deny=deny)
        self._channel_changed(channel)
        return channel

    def remove_overwrite(self, channel_id: int, target_id: int) -> Channel:
        channel = self._guild_channel(channel_id)
        channel.overwrites.pop(target_id, None)
        self._channel_changed(channel)
        return channel

    def set_bot_permissions(self, channel_id: int, permissions: int | None) -> Channel:
        """Make the bot's permissions in the channel exactly `permissions` (None: back to its roles)."""
        if permissions is None:
            return self.remove_overwrite(channel_id, self.bot.id)
        overwrite = _exact_overwrite(self.bot.id, permissions)
        return self.set_overwrite(
            channel_id, self.bot.id, kind=OVERWRITE_MEMBER, allow=overwrite.allow, deny=overwrite.deny
        )

    def set_upload_limit(self, channel_id: int, limit: int | None) -> Channel:
        channel = self.channel(channel_id)
        channel.upload_limit = limit
        self.touch()
        return channel

    def _channel_changed(self, channel: Channel) -> None:
        self.touch()
        self._emit("CHANNEL_UPDATE", channel.payload(), guild_id=channel.guild_id, intent=INTENT_GUILDS)

    def create_member(
        self,
        guild_id: int,
        username: str,
        *,
        role_ids: Sequence[int] = (),
        permissions: int | None = None,
        nick: str | None = None,
        bot: bool = False,
    ) -> Member:
        guild = self.guild(guild_id)
        unknown = [role_id for role_id in role_ids if role_id not in guild.roles]
        if unknown:
            raise ControlError(f"no roles {unknown} in guild {guild_id}", 404)
        user = User(id=self.ids.next(), username=username, bot=bot)
        self.users[user.id] = user
        roles = list(role_ids)
        if permissions is not None:
            roles.append(self.create_role(guild_id, f"{username}-permissions", permissions=permissions).id)
        member = Member(user=user, guild_id=guild_id, role_ids=roles, joined_at=self.clock.now(), nick=nick)
        guild.members[user.id] = member
        self.touch()
        payload = member.payload() | {"guild_id": str(guild_id)}
        self._emit("GUILD_MEMBER_ADD", payload, guild_id=guild_id, intent=INTENT_GUILD_MEMBERS)
        return member

    def set_member_roles(self, guild_id: int, user_id: int, role_ids: Sequence[int]) -> Member:
        member = self.member(guild_id, user_id)
        guild = self.guilds[guild_id]
        unknown = [role_id for role_id in role_ids if role_id not in guild.roles]
        if unknown:
            raise ControlError(f"no roles {unknown} in guild {guild_id}", 404)
        member.role_ids = list(role_ids)
        self.touch()
        payload = member.payload() | {"guild_id": str(guild_id)}
        self._emit("GUILD_MEMBER_UPDATE", payload, guild_id=guild_id, intent=INTENT_GUILD_MEMBERS)
        return member

    # --- threads and forum posts ---------------------------------------------------------------------------------
    # discord/discord-api-docs, docs/topics/threads.md: a thread inherits its parent's permissions, Send Messages in
    # Threads replaces Send Messages, a private thread is seen by its members and Manage Threads only, a message sent
    # to an archived thread unarchives it unless it is locked, nothing else but deletes happens in an archived thread,
    # and a locked one takes no messages from those without Manage Threads.

    def bot_sees(self, channel: Channel) -> bool:
        return bool(self.bot_permissions(channel) & Permission.VIEW_CHANNEL)

    def active_threads(self, guild: Guild) -> list[Channel]:
        """The guild's live, unarchived threads the bot can see (GUILD_CREATE's `threads`)."""
        return [
            channel
            for channel in self.channels.values()
            if channel.is_thread
            and channel.guild_id == guild.id
            and not channel.archived
            and not channel.deleted
            and self.bot_sees(channel)
        ]

    def thread_payload_for_bot(self, thread: Channel) -> dict[str, Any]:
        """The thread with the bot's own thread member, when it is one (as Discord sends it to the bot)."""
        data = thread.payload()
        if self.bot.id in thread.thread_member_ids:
            data["member"] = self._thread_member_payload(thread, self.bot.id)
        return data

    def _thread_member_payload(self, thread: Channel, user_id: int) -> dict[str, Any]:
        return {"id": str(thread.id), "user_id": str(user_id), "join_timestamp": iso(self.clock.now()), "flags": 0}

    def _thread(self, thread_id: int) -> Channel:
        channel = self.channel(thread_id)
        if not channel.is_thread:
            raise ControlError(f"channel {thread_id} is not a thread", 409)
        if channel.deleted:
            raise ControlError(f"thread {thread_id} was deleted", 404)
        return channel

    def _new_thread(
        self,
        parent: Channel,
        name: str,
        *,
        kind: int,
        owner_id: int,
        thread_id: int | None = None,
        invitable: bool = True,
    ) -> Channel:
        if not 1 <= len(name) <= rules.THREAD_NAME_LIMIT:
            raise errors.too_long(["name"], rules.THREAD_NAME_LIMIT)
        now = self.clock.now()
        thread = Channel(
            id=thread_id if thread_id is not None else self.ids.next(),
            guild_id=parent.guild_id,
            name=name,
            type=kind,
            parent_id=parent.id,
            owner_id=owner_id,
            invitable=invitable,
            thread_member_ids=[owner_id],
            created_at=now,
            archive_timestamp=now,
            nsfw=parent.nsfw,
        )
        self.channels[thread.id] = thread
        self.channel_messages[thread.id] = []
        self.touch()
        if self.bot_sees(thread):
            self._emit(
                "THREAD_CREATE",
                self.thread_payload_for_bot(thread) | {"newly_created": True},
                guild_id=thread.guild_id,
                intent=INTENT_GUILDS,
            )
        return thread

    def create_thread(
        self,
        parent_id: int,
        name: str,
        *,
        owner_id: int,
        private: bool = False,
        message_id: int | None = None,
        content: str | None = None,
        member_ids: Sequence[int] = (),
    ) -> Channel:
        """A member starts a thread in a text channel (`private`, or public from `message_id` or from nothing), or
        a post in a forum (`content` is its first message, whose id is the post's)."""
        parent = self._guild_channel(parent_id)
        guild = self.guilds[parent.guild_id or 0]
        if parent.is_thread or parent.deleted:
            raise ControlError(f"channel {parent_id} cannot hold threads (a thread, or deleted)", 409)
        for user_id in (owner_id, *member_ids):
            if user_id not in guild.members:
                raise ControlError(f"user {user_id} is not a member of guild {guild.id}", 404)
        if parent.type == CHANNEL_FORUM:
            if private or message_id is not None or not content:
                raise ControlError("a forum post is public and starts with a first message (`content`)")
            thread = self._new_thread(parent, name, kind=CHANNEL_PUBLIC_THREAD, owner_id=owner_id)
            self._create_message(
                thread,
                {"content": content},
                (),
                allowed_flags=rules.CHANNEL_FLAGS,
                author_id=owner_id,
                message_id=thread.id,
            )
            parent.last_message_id = thread.id
        elif message_id is not None:
            starter = self.message(message_id)
            if private or starter.channel_id != parent.id or starter.id in self.channels:
                raise ControlError(f"message {message_id} cannot start a public thread in {parent_id}", 409)
            thread = self._new_thread(parent, name, kind=CHANNEL_PUBLIC_THREAD, owner_id=owner_id, thread_id=starter.id)
        else:
            kind = CHANNEL_PRIVATE_THREAD if private else CHANNEL_PUBLIC_THREAD
            thread = self._new_thread(parent, name, kind=kind, owner_id=owner_id)
        for user_id in member_ids:
            self._add_thread_member(thread, user_id)
        return thread

    def add_thread_member(self, thread_id: int, user_id: int) -> Channel:
        thread = self._thread(thread_id)
        if user_id not in self.guilds[thread.guild_id or 0].members:
            raise ControlError(f"user {user_id} is not a member of guild {thread.guild_id}", 404)
        self._add_thread_member(thread, user_id)
        return thread

    def remove_thread_member(self, thread_id: int, user_id: int) -> Channel:
        thread = self._thread(thread_id)
        if user_id not in thread.thread_member_ids:
            return thread
        visible = self.bot_sees(thread)
        thread.thread_member_ids.remove(user_id)
        self.touch()
        if visible:
            self._emit(
                "THREAD_MEMBERS_UPDATE",
                {
                    "id": str(thread.id),
                    "guild_id": str(thread.guild_id),
                    "member_count": len(thread.thread_member_ids),
                    "removed_member_ids": [str(user_id)],
                },
                guild_id=thread.guild_id,
                intent=INTENT_GUILDS if user_id == self.bot.id else INTENT_GUILD_MEMBERS,
            )
        return thread

    def _add_thread_member(self, thread: Channel, user_id: int) -> None:
        if user_id in thread.thread_member_ids:
            return
        saw = self.bot_sees(thread)
        thread.thread_member_ids.append(user_id)
        self.touch()
        if not self.bot_sees(thread):
            return
        if user_id == self.bot.id and not saw:
            # Added to a private thread it could not see: Discord sends the thread first (with the bot's member).
            self._emit(
                "THREAD_CREATE", self.thread_payload_for_bot(thread), guild_id=thread.guild_id, intent=INTENT_GUILDS
            )
        self._emit(
            "THREAD_MEMBERS_UPDATE",
            {
                "id": str(thread.id),
                "guild_id": str(thread.guild_id),
                "member_count": len(thread.thread_member_ids),
                "added_members": [self._thread_member_payload(thread, user_id)],
            },
            guild_id=thread.guild_id,
            intent=INTENT_GUILDS if user_id == self.bot.id else INTENT_GUILD_MEMBERS,
        )

    def _thread_message_posted(self, thread: Channel, author_id: int) -> None:
        """A message in a thread counts, and makes its author a member (as Discord does)."""
        thread.message_count += 1
        self._add_thread_member(thread, author_id)

    def set_thread_state(self, thread_id: int, *, archived: bool | None = None, locked: bool | None = None) -> Channel:
        """A moderator (or the auto-archive timer) archives, unarchives, locks or unlocks a thread."""
        thread = self._thread(thread_id)
        self._set_thread_state(thread, archived=archived, locked=locked)
        return thread

    def _set_thread_state(self, thread: Channel, *, archived: bool | None, locked: bool | None) -> None:
        if archived is not None and archived != thread.archived:
            thread.archived = archived
            thread.archive_timestamp = self.clock.now()
        if locked is not None:
            thread.locked = locked
        self.touch()
        if self.bot_sees(thread):
            self._emit(
                "THREAD_UPDATE", self.thread_payload_for_bot(thread), guild_id=thread.guild_id, intent=INTENT_GUILDS
            )

    def delete_channel(self, channel_id: int) -> Channel:
        """Someone deletes a channel or a thread: from then on Discord answers 404 10003 for it."""
        channel = self._guild_channel(channel_id)
        if channel.deleted:
            raise ControlError(f"channel {channel_id} was already deleted", 409)
        self._delete_channel(channel)
        return channel

    def _delete_channel(self, channel: Channel) -> None:
        visible = self.bot_sees(channel)
        channel.deleted = True
        self.touch()
        if channel.is_thread:
            if visible:
                payload = {
                    "id": str(channel.id),
                    "guild_id": str(channel.guild_id),
                    "parent_id": str(channel.parent_id),
                    "type": channel.type,
                }
                self._emit("THREAD_DELETE", payload, guild_id=channel.guild_id, intent=INTENT_GUILDS)
            return
        guild = self.guilds[channel.guild_id or 0]
        if channel.id in guild.channel_ids:
            guild.channel_ids.remove(channel.id)
        self._emit("CHANNEL_DELETE", channel.payload(), guild_id=channel.guild_id, intent=INTENT_GUILDS)
        for thread in [c for c in self.channels.values() if c.parent_id == channel.id and not c.deleted]:
            self._delete_channel(thread)

    def require_thread_postable(self, thread: Channel) -> None:
        """Posting in a thread: refused in a locked one (without Manage Threads); an archived one is unarchived."""
        manages = bool(self.bot_permissions(thread) & Permission.MANAGE_THREADS)
        if thread.locked and not manages:
            raise errors.archived_thread() if thread.archived else errors.thread_locked()
        if thread.archived:
            self._set_thread_state(thread, archived=False, locked=None)

    def require_thread_editable(self, thread: Channel) -> None:
        """Editing a message in a thread: never while it is archived; in a locked one only with Manage Threads."""
        if thread.archived:
            raise errors.archived_thread()
        if thread.locked and not self.bot_permissions(thread) & Permission.MANAGE_THREADS:
            raise errors.thread_locked()

    def rest_start_thread(
        self, channel_id: int, body: dict[str, Any], uploads: Sequence[Upload]
    ) -> tuple[Channel, Message | None]:
        """POST /channels/{id}/threads: a thread without a starter message in a text channel, or a forum post (with
        its first message, `message`)."""
        parent = self.rest_channel(channel_id)
        if parent.is_thread or parent.is_dm:
            raise errors.invalid_channel_type()
        name = str(body.get("name") or "")
        if parent.type == CHANNEL_FORUM:
            first = body.get("message")
            if not isinstance(first, dict):
                raise errors.invalid_form_body(
                    {"message": errors.field_error("BASE_TYPE_REQUIRED", "This field is required")}
                )
            self.require_permissions(parent, Permission.SEND_MESSAGES | (Permission.ATTACH_FILES if uploads else 0))
            rules.check_message(
                first,
                [len(upload.data) for upload in uploads],
                upload_limit=self.upload_limit(parent),
                allowed_flags=rules.CHANNEL_FLAGS,
                creating=True,
            )
            post = self._new_thread(parent, name, kind=CHANNEL_PUBLIC_THREAD, owner_id=self.bot.id)
            message = self._create_message(post, first, uploads, allowed_flags=rules.CHANNEL_FLAGS, message_id=post.id)
            parent.last_message_id = post.id
            return post, message
        kind = int(body.get("type") or CHANNEL_PRIVATE_THREAD)
        if kind not in (CHANNEL_PUBLIC_THREAD, CHANNEL_PRIVATE_THREAD):
            raise errors.invalid_form_body(
                {"type": errors.field_error("BASE_TYPE_CHOICES", "Value must be one of {11, 12}.")}
            )
        private = kind == CHANNEL_PRIVATE_THREAD
        self.require_permissions(
            parent, Permission.CREATE_PRIVATE_THREADS if private else Permission.CREATE_PUBLIC_THREADS
        )
        thread = self._new_thread(
            parent, name, kind=kind, owner_id=self.bot.id, invitable=bool(body.get("invitable", True))
        )
        return thread, None

    def rest_start_thread_from_message(self, channel_id: int, message_id: int, body: dict[str, Any]) -> Channel:
        """POST /channels/{id}/messages/{id}/threads: a public thread whose id is the message's."""
        parent = self.rest_channel(channel_id)
        if parent.is_thread or parent.is_dm or parent.type == CHANNEL_FORUM:
            raise errors.invalid_channel_type()
        starter = self.rest_message(parent, message_id)
        self.require_permissions(parent, Permission.CREATE_PUBLIC_THREADS)
        if starter.id in self.channels:
            raise errors.message_has_thread()
        return self._new_thread(
            parent, str(body.get("name") or ""), kind=CHANNEL_PUBLIC_THREAD, owner_id=self.bot.id, thread_id=starter.id
        )

    def rest_edit_channel(self, channel_id: int, body: dict[str, Any]) -> Channel:
        """PATCH /channels/{id}: a thread's name, archived and locked (a plain channel's name and topic)."""
        channel = self.rest_channel(channel_id)
        if not channel.is_thread:
            self.require_permissions(channel, Permission.MANAGE_CHANNELS)
            channel.name = str(body.get("name") or channel.name)
            if "topic" in body:
                channel.topic = body["topic"]
            self._channel_changed(channel)
            return channel
        manages = bool(self.bot_permissions(channel) & Permission.MANAGE_THREADS)
        owns = channel.owner_id == self.bot.id
        archived, locked = body.get("archived"), body.get("locked")
        if "locked" in body and not manages:
            raise errors.missing_permissions()
        if archived is False and channel.archived:
            # Unarchiving takes a member of the thread; a locked one, Manage Threads or its creator.
            if channel.locked and not (manages or owns):
                raise errors.missing_permissions()
            if not (manages or self.bot.id in channel.thread_member_ids):
                raise errors.missing_permissions()
        elif channel.archived:
            raise errors.archived_thread()
        if ("name" in body or archived is True) and not (manages or owns):
            raise errors.missing_permissions()
        if "name" in body:
            name = str(body["name"] or "")
            if not 1 <= len(name) <= rules.THREAD_NAME_LIMIT:
                raise errors.too_long(["name"], rules.THREAD_NAME_LIMIT)
            channel.name = name
        self._set_thread_state(
            channel,
            archived=archived if isinstance(archived, bool) else None,
            locked=locked if isinstance(locked, bool) else None,
        )
        return channel

    def rest_delete_channel(self, channel_id: int) -> Channel:
        """DELETE /channels/{id}: a thread takes Manage Threads, a channel Manage Channels."""
        channel = self.rest_channel(channel_id)
        wanted = Permission.MANAGE_THREADS if channel.is_thread else Permission.MANAGE_CHANNELS
        self.require_permissions(channel, wanted)
        self._delete_channel(channel)
        return channel

    # --- direct messages -----------------------------------------------------------------------------------------

    def install_app(self, user_id: int, installed: bool = True) -> User:
        """The user installs the app on their account (a user install), or removes it."""
        if not isinstance(installed, bool):
            raise ControlError(f"installed must be true or false, not {installed!r}")
        user = self._user(user_id)
        user.app_installed = installed
        self.touch()
        return user

    def create_private_channel(self, user_ids: Sequence[int], *, group: bool = True, name: str = "") -> Channel:
        """A group DM (or, `group=False`, a DM between two users) that the bot is no member of."""
        users = [self._user(int(user_id)) for user_id in user_ids]
        if len(users) < 2 or (not group and len(users) != 2):
            raise ControlError("a group DM needs two users or more, a DM between users exactly two")
        if any(user.id == self.bot.id for user in users):
            raise ControlError("the bot's own DM is POST /users/@me/channels, not a private channel")
        channel = Channel(
            id=self.ids.next(),
            guild_id=None,
            name=name,
            type=CHANNEL_GROUP_DM if group else CHANNEL_DM,
            recipients=users,
        )
        self.channels[channel.id] = channel
        self.channel_messages[channel.id] = []
        # The bot is in neither: no CHANNEL_CREATE reaches it.
        self.touch()
        return channel

    def set_dms_open(self, user_id: int, open: bool) -> User:
        """Whether the user accepts DMs from the bot (their privacy setting)."""
        if not isinstance(open, bool):
            raise ControlError(f"open must be true or false, not {open!r}")
        user = self._user(user_id)
        user.dms_open = open
        self.touch()
        return user

    def dm_channel(self, user_id: int) -> Channel | None:
        """The bot's DM channel with the user, once the bot has opened it."""
        self._user(user_id)
        channel_id = self.dm_channel_ids.get(user_id)
        return self.channels[channel_id] if channel_id is not None else None

    def open_dm(self, recipient_id: Any) -> Channel:
        """POST /users/@me/channels: the DM channel with the user, created the first time (one per user)."""
        try:
            user = self.users.get(int(str(recipient_id)))
        except ValueError:
            user = None
        if user is None or user.id == self.bot.id:
            raise errors.invalid_recipients()
        existing = self.dm_channel(user.id)
        if existing is not None:
            return existing
        channel = Channel(id=self.ids.next(), guild_id=None, name="", type=CHANNEL_DM, recipient=user)
        self.channels[channel.id] = channel
        self.channel_messages[channel.id] = []
        self.dm_channel_ids[user.id] = channel.id
        # Discord sends bots no CHANNEL_CREATE for a DM; the REST reply is all the bot learns.
        self.touch()
        return channel

    def require_dm_allowed(self, recipient: User) -> None:
        """Discord delivers a bot's DM only to a user who shares a server with it, is no bot and accepts DMs."""
        shares_a_guild = any(recipient.id in guild.members for guild in self.guilds.values() if guild.bot_installed)
        # A user who installed the app on their account may be sent DMs by it, sharing a guild or not.
        if recipient.bot or not recipient.dms_open or not (shares_a_guild or recipient.app_installed):
            raise errors.cannot_message_user()

    # --- payloads ------------------------------------------------------------------------------------------------

    def guild_payload(self, guild: Guild) -> dict[str, Any]:
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": 0,
            "preferred_locale": guild.locale,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "features": [],
            "roles": [role.payload() for role in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "application_id": None,
            "max_members": 500000,
            "premium_progress_bar_enabled": False,
        }

    def guild_create_payload(self, guild: Guild) -> dict[str, Any]:
        data = self.guild_payload(guild)
        data.update(
            joined_at=iso(guild.members[self.bot.id].joined_at),
            large=False,
            unavailable=False,
            member_count=len(guild.members),
            members=[member.payload() for member in guild.members.values()],
            channels=[self.channels[channel_id].payload() for channel_id in guild.channel_ids],
            threads=[self.thread_payload_for_bot(thread) for thread in self.active_threads(guild)],
            presences=[],
            voice_states=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return data

    def message_payload(self, message: Message, *, with_reference: bool = True) -> dict[str, Any]:
        author = self.users.get(message.author_id, self.bot)
        guild = self.guilds.get(message.guild_id) if message.guild_id else None
        mentions = [self.users[user_id].payload() for user_id in message.pings.users if user_id in self.users]
        replied = message.pings.replied_user
        if replied is not None and replied in self.users and replied not in message.pings.users:
            mentions.append(self.users[replied].payload())
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": author.payload(),
            "content": message.content,
            "timestamp": iso(message.created_at),
            "edited_timestamp": iso(message.edited_at) if message.edited_at else None,
            "tts": message.tts,
            "mention_everyone": message.pings.everyone,
            "mentions": mentions,
            "mention_roles": [str(role_id) for role_id in message.pings.roles],
            "attachments": [attachment.payload() for attachment in message.attachments],
            "embeds": message.embeds,
            "reactions": [],
            "pinned": False,
            "type": message.type,
            "flags": message.flags,
            "components": message.components,
        }
        if guild is not None:
            data["guild_id"] = str(guild.id)
        if message.nonce is not None:
            data["nonce"] = message.nonce
        if message.webhook_id is not None:
            data["webhook_id"] = str(message.webhook_id)
        if message.application_id is not None:
            data["application_id"] = str(message.application_id)
        if message.message_reference is not None:
            data["message_reference"] = message.message_reference
            if with_reference:
                referenced = self.messages.get(int(message.message_reference.get("message_id") or 0))
                if referenced is not None and not referenced.deleted:
                    data["referenced_message"] = self.message_payload(referenced, with_reference=False)
                else:
                    data["referenced_message"] = None
        if message.interaction_id is not None and message.interaction_id in self.interactions:
            interaction = self.interactions[message.interaction_id]
            user = self.users[interaction.user_id].payload()
            metadata: dict[str, Any] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": user,
                "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
            }
            if interaction.original_message_id is not None and interaction.original_message_id != message.id:
                metadata["original_response_message_id"] = str(interaction.original_message_id)
            if interaction.message_id is not None:
                metadata["interacted_message_id"] = str(interaction.message_id)
            data["interaction_metadata"] = metadata
            if interaction.type == APPLICATION_COMMAND:
                data["interaction"] = {
                    "id": str(interaction.id),
                    "type": interaction.type,
                    "name": interaction.data.get("name", ""),
                    "user": user,
                }
        return data

    def gateway_message_payload(self, message: Message) -> dict[str, Any]:
        """MESSAGE_CREATE / MESSAGE_UPDATE: the message plus the author's partial member in guilds."""
        data = self.message_payload(message)
        if message.guild_id is not None and message.webhook_id is None:
            member = self.guilds[message.guild_id].members.get(message.author_id)
            if member is not None:
                data["member"] = member.payload(with_user=False)
        return data

    def channel_payload_for(self, channel: Channel, user_id: int) -> dict[str, Any]:
        return channel.payload() | {"permissions": str(self.channel_permissions(channel, user_id))}

    # --- attachments ---------------------------------------------------------------------------------------------

    def _new_attachment(
        self, channel: Channel, filename: str, data: bytes, *, description: str | None, ephemeral: bool
    ) -> Attachment:
        attachment_id = self.ids.next()
        content_type, width, height = _describe_file(filename, data)
        path = f"attachments/{channel.id}/{attachment_id}/{quote(filename)}"
        attachment = Attachment(
            id=attachment_id,
            channel_id=channel.id,
            filename=filename,
            data=data,
            content_type=content_type,
            width=width,
            height=height,
            description=description,
            url=f"{self.http_base_url}/cdn/{path}",
            proxy_url=f"{self.http_base_url}/media/{path}",
            ephemeral=ephemeral,
        )
        self.attachments[attachment_id] = attachment
        return attachment

    def _attachments(
        self,
        channel: Channel,
        spec: list[dict[str, Any]] | None,
        uploads: Sequence[Upload],
        *,
        existing: Sequence[Attachment] = (),
        ephemeral: bool = False,
    ) -> list[Attachment]:
        """The attachments after a create or edit: `spec` keeps existing ones by id and names uploads by index."""
        by_index = {upload.index: upload for upload in uploads}
        kept = {attachment.id: attachment for attachment in existing}
        result: list[Attachment] = []
        used: set[int] = set()
        for entry in spec or []:
            try:
                entry_id = int(str(entry.get("id")))
            except ValueError:
                raise errors.invalid_form_body(
                    {"attachments": errors.field_error("ATTACHMENT_ID_INVALID", "Invalid attachment id")}
                ) from None
            if entry_id in kept:
                result.append(kept[entry_id])
            elif entry_id in by_index:
                upload = by_index[entry_id]
                used.add(entry_id)
                filename = str(entry.get("filename") or upload.filename)
                result.append(
                    self._new_attachment(
                        channel, filename, upload.data, description=entry.get("description"), ephemeral=ephemeral
                    )
                )
            else:
                raise errors.invalid_form_body(
                    {"attachments": errors.field_error("ATTACHMENT_NOT_FOUND", f"Unknown attachment {entry_id}")}
                )
        # Uploads the spec does not mention are still attached, after the others (as Discord does).
        for upload in uploads:
            if upload.index not in used:
                result.append(
                    self._new_attachment(channel, upload.filename, upload.data, description=None, ephemeral=ephemeral)
                )
        return result

    def _resolve_embeds(self, embeds: list[dict[str, Any]], attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
        """Point `attachment://name` images at the uploaded file, as Discord does when it stores the embed."""
        by_name = {attachment.filename: attachment for attachment in attachments}
        resolved: list[dict[str, Any]] = []
        for embed in embeds:
            embed = dict(embed)
            embed.setdefault("type", "rich")
            for key in ("image", "thumbnail"):
                media = embed.get(key)
                url = media.get("url") if isinstance(media, dict) else None
                if isinstance(url, str) and url.startswith("attachment://"):
                    attachment = by_name.get(url.removeprefix("attachment://"))
                    if attachment is not None:
                        embed[key] = {
                            "url": attachment.url,
                            "proxy_url": attachment.proxy_url,
                            "width": attachment.width,
                            "height": attachment.height,
                        }
            resolved.append(embed)
        return resolved

    def _resolve_components(
        self,
        components: list[dict[str, Any]],
        attachments: Sequence[Attachment],
        *,
        created: Sequence[Attachment],
    ) -> list[dict[str, Any]]:
        """A Components V2 tree as Discord stores it: every `attachment://name` must name one of the message's files
        and becomes that file's unfurled media item; components without an `id` are numbered in order.

        On a refusal the attachments this request `created` are forgotten again.
        """
        try:
            rules.check_attachment_references(components, {attachment.filename for attachment in attachments})
        except errors.ApiError:
            for attachment in created:
                self.attachments.pop(attachment.id, None)
            raise
        resolved: list[dict[str, Any]] = copy.deepcopy(components)
        by_name = {attachment.filename: attachment for attachment in attachments}
        for _, media in rules.media_references(resolved):
            url = media.get("url")
            if isinstance(url, str) and url.startswith(rules.ATTACHMENT_SCHEME):
                attachment = by_name[url.removeprefix(rules.ATTACHMENT_SCHEME)]
                media.update(
                    url=attachment.url,
                    proxy_url=attachment.proxy_url,
                    width=attachment.width,
                    height=attachment.height,
                    content_type=attachment.content_type,
                    attachment_id=str(attachment.id),
                    flags=0,
                )
        _number_components(resolved)
        return resolved

    def _forget_new(self, attachments: Sequence[Attachment], existing: Sequence[Attachment]) -> None:
        """Drop the attachments a refused edit had already stored."""
        kept = {attachment.id for attachment in existing}
        for attachment in attachments:
            if attachment.id not in kept:
                self.attachments.pop(attachment.id, None)

    # --- mentions ------------------------------------------------------------------------------------------------

    def _pings(
        self,
        channel: Channel,
        content: str,
        allowed: dict[str, Any] | None,
        reference: Message | None,
    ) -> Pings:
        """Who the message notifies, given its content, the allowed_mentions sent and the bot's permissions."""
        guild = self.guild_of(channel)
        if allowed is None:
            parse = {"users", "roles", "everyone"}
            explicit_users: set[int] = set()
            explicit_roles: set[int] = set()
            replied_user = True
        else:
            parse = set(allowed.get("parse") or [])
            explicit_users = {int(user_id) for user_id in allowed.get("users") or []}
            explicit_roles = {int(role_id) for role_id in allowed.get("roles") or []}
            replied_user = bool(allowed.get("replied_user", False))
        pings = Pings()
        if reference is not None and replied_user and reference.author_id != self.bot.id:
            pings.replied_user = reference.author_id
        if guild is None:
            # In a DM only its recipient can be notified; there are no roles and no @everyone.
            assert channel.recipient is not None
            if str(channel.recipient.id) in USER_MENTION.findall(content) and (
                "users" in parse or channel.recipient.id in explicit_users
            ):
                pings.users.append(channel.recipient.id)
            return pings
        can_mention_everyone = has(self.bot_permissions(channel), Permission.MENTION_EVERYONE)
        for match in USER_MENTION.finditer(content):
            user_id = int(match.group(1))
            if user_id == self.bot.id or user_id not in guild.members or user_id in pings.users:
                continue
            if "users" in parse or user_id in explicit_users:
                pings.users.append(user_id)
        for match in ROLE_MENTION.finditer(content):
            role_id = int(match.group(1))
            role = guild.roles.get(role_id)
            if role is None or role_id in pings.roles or not (role.mentionable or can_mention_everyone):
                continue
            if "roles" in parse or role_id in explicit_roles:
                pings.roles.append(role_id)
        if ("@everyone" in content or "@here" in content) and "everyone" in parse and can_mention_everyone:
            pings.everyone = True
        return pings

    # --- messages ------------------------------------------------------------------------------------------------

    def _create_message(
        self,
        channel: Channel,
        body: dict[str, Any],
        uploads: Sequence[Upload],
        *,
        allowed_flags: int,
        interaction: Interaction | None = None,
        message_type: int = MESSAGE_DEFAULT,
        extra_flags: int = 0,
        creating: bool = True,
        author_id: int | None = None,
        message_id: int | None = None,
    ) -> Message:
        rules.check_message(
            body,
            [len(upload.data) for upload in uploads],
            upload_limit=self.upload_limit(channel),
            allowed_flags=allowed_flags,
            creating=creating,
        )
        flags = (body.get("flags") or 0) | extra_flags
        ephemeral = bool(flags & rules.FLAG_EPHEMERAL)
        reference, reference_payload = self._reference(channel, body.get("message_reference"))
        if reference_payload is not None and message_type == MESSAGE_DEFAULT:
            message_type = MESSAGE_REPLY
        attachments = self._attachments(channel, body.get("attachments"), uploads, ephemeral=ephemeral)
        components = list(body.get("components") or [])
        if flags & rules.FLAG_COMPONENTS_V2:
            components = self._resolve_components(components, attachments, created=attachments)
        content = body.get("content") or ""
        allowed = body.get("allowed_mentions")
        loading = bool(flags & rules.FLAG_LOADING)
        message = Message(
            id=self.ids.next() if message_id is None else message_id,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=self.bot.id if author_id is None else author_id,
            content=content,
            embeds=self._resolve_embeds(body.get("embeds") or [], attachments),
            components=components,
            attachments=attachments,
            flags=flags,
            created_at=self.clock.now(),
            type=message_type,
            tts=bool(body.get("tts", False)),
            nonce=str(body["nonce"]) if body.get("nonce") is not None else None,
            webhook_id=self.application_id if interaction is not None else None,
            application_id=self.application_id if interaction is not None else None,
            message_reference=reference_payload,
            allowed_mentions=allowed,
            pings=Pings()
            if ephemeral or loading
            else self._pings(channel, _notifying_text(content, components), allowed, reference),
            interaction_id=interaction.id if interaction is not None else None,
        )
        message.history.append(message.snapshot(message.created_at))
        self.messages[message.id] = message
        self.channel_messages[channel.id].append(message.id)
        if message.nonce is not None:
            self.nonce_messages[(channel.id, message.nonce)] = message.id
        if not ephemeral:
            channel.last_message_id = message.id
            if channel.is_thread:
                self._thread_message_posted(channel, message.author_id)
        self.touch()
        if not ephemeral:
            self._emit(
                "MESSAGE_CREATE",
                self.gateway_message_payload(message),
                guild_id=channel.guild_id,
                intent=_message_intent(message),
            )
        return message

    def _reference(self, channel: Channel, raw: Any) -> tuple[Message | None, dict[str, Any] | None]:
        if not raw:
            return None, None
        message_id = raw.get("message_id")
        referenced = self.messages.get(int(message_id)) if message_id is not None else None
        if referenced is None or referenced.deleted or referenced.ephemeral or referenced.channel_id != channel.id:
            if raw.get("fail_if_not_exists", True):
                raise errors.invalid_form_body(
                    {"message_reference": errors.field_error("MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")}
                )
            return None, None
        payload = {"type": raw.get("type", 0), "message_id": str(referenced.id), "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            payload["guild_id"] = str(channel.guild_id)
        return referenced, payload

    def _edit_message(
        self, message: Message, body: dict[str, Any], uploads: Sequence[Upload], *, allowed_flags: int
    ) -> Message:
        channel = self.channels[message.channel_id]
        was_v2 = bool(message.flags & rules.FLAG_COMPONENTS_V2)
        new_flags = body.get("flags")
        if was_v2 and isinstance(new_flags, int) and not new_flags & rules.FLAG_COMPONENTS_V2:
            raise errors.invalid_form_body(
                {
                    "flags": errors.field_error(
                        "MESSAGE_CANNOT_REMOVE_COMPONENTS_V2_FLAG",
                        "The IS_COMPONENTS_V2 flag cannot be removed from a message once it is set",
                    )
                }
            )
        v2 = was_v2 or bool(isinstance(new_flags, int) and new_flags & rules.FLAG_COMPONENTS_V2)
        rules.check_message(
            body,
            [len(upload.data) for upload in uploads],
            upload_limit=self.upload_limit(channel),
            allowed_flags=allowed_flags,
            creating=False,
            components_v2=v2,
        )
        now = self.clock.now()
        was_loading = bool(message.flags & rules.FLAG_LOADING)
        # Work out the whole new state first: a refused edit must leave the message as it was.
        content = (body["content"] or "") if "content" in body else message.content
        attachments = message.attachments
        if body.get("attachments") is not None:
            attachments = self._attachments(
                channel, body["attachments"], uploads, existing=message.attachments, ephemeral=message.ephemeral
            )
        elif uploads:
            attachments = attachments + self._attachments(channel, None, uploads, ephemeral=message.ephemeral)
        embeds = self._resolve_embeds(body["embeds"] or [], attachments) if "embeds" in body else message.embeds
        components = list(body["components"] or []) if "components" in body else message.components
        if v2 and not was_v2:
            # Turning a message into a V2 one: what it said before must be cleared in the same edit.
            for field, value in (("content", content), ("embeds", embeds)):
                if value:
                    self._forget_new(attachments, message.attachments)
                    raise errors.invalid_form_body(
                        {
                            field: errors.field_error(
                                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                                f"The '{field}' field cannot be used when using MessageFlags.IS_COMPONENTS_V2",
                            )
                        }
                    )
        if v2 and "components" in body:
            kept = {attachment.id for attachment in message.attachments}
            created = [attachment for attachment in attachments if attachment.id not in kept]
            components = self._resolve_components(components, attachments, created=created)
        if not (content or embeds or components or attachments):
            self._forget_new(attachments, message.attachments)
            raise errors.empty_message()
        message.content = content
        message.attachments = attachments
        message.embeds = embeds
        message.components = components
        if body.get("flags") is not None:
            # Only SUPPRESS_EMBEDS can be changed by an edit (and IS_COMPONENTS_V2 set, never cleared); ephemeral and
            # loading are the message's nature.
            message.flags = (message.flags & ~rules.FLAG_SUPPRESS_EMBEDS) | (body["flags"] & rules.FLAG_SUPPRESS_EMBEDS)
        if v2:
            message.flags |= rules.FLAG_COMPONENTS_V2
        if "allowed_mentions" in body:
            message.allowed_mentions = body["allowed_mentions"]
        message.flags &= ~rules.FLAG_LOADING
        if was_loading:
            # A deferred response's first edit is when its content is first shown: that is when it notifies.
            reference = None
            if message.message_reference:
                reference = self.messages.get(int(message.message_reference["message_id"]))
            if not message.ephemeral:
                message.pings = self._pings(
                    channel, _notifying_text(message.content, message.components), message.allowed_mentions, reference
                )
        else:
            message.edited_at = now
        message.history.append(message.snapshot(now))
        self.touch()
        if not message.ephemeral:
            self._emit(
                "MESSAGE_UPDATE",
                self.gateway_message_payload(message),
                guild_id=message.guild_id,
                intent=_message_intent(message),
            )
        return message

    def _delete_message(self, message: Message) -> None:
        message.deleted = True
        self.touch()
        if not message.ephemeral:
            payload = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id is not None:
                payload["guild_id"] = str(message.guild_id)
            self._emit("MESSAGE_DELETE", payload, guild_id=message.guild_id, intent=_message_intent(message))

    def public_messages(self, channel: Channel) -> Iterator[Message]:
        for message_id in self.channel_messages[channel.id]:
            message = self.messages[message_id]
            if not message.deleted and not message.ephemeral:
                yield message

    # --- REST: channels and messages, as the bot -----------------------------------------------------------------

    def rest_channel(self, channel_id: int) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None or channel.deleted:
            raise errors.unknown_channel()
        if not self.bot_permissions(channel) & Permission.VIEW_CHANNEL:
            raise errors.missing_access()
        return channel

    def rest_message(self, channel: Channel, message_id: int) -> Message:
        message = self.messages.get(message_id)
        if message is None or message.channel_id != channel.id or message.deleted or message.ephemeral:
            raise errors.unknown_message()
        return message

    def rest_create_message(self, channel_id: int, body: dict[str, Any], uploads: Sequence[Upload]) -> Message:
        channel = self.rest_channel(channel_id)
        if channel.recipient is not None:
            self.require_dm_allowed(channel.recipient)
        if channel.type == CHANNEL_FORUM:
            # A forum holds posts (threads); a message goes into one of them.
            raise errors.invalid_channel_type()
        wanted = int(Permission.SEND_MESSAGES_IN_THREADS if channel.is_thread else Permission.SEND_MESSAGES)
        if uploads:
            wanted |= Permission.ATTACH_FILES
        if body.get("embeds"):
            wanted |= Permission.EMBED_LINKS
        if body.get("message_reference"):
            wanted |= Permission.READ_MESSAGE_HISTORY
        if body.get("tts"):
            wanted |= Permission.SEND_TTS_MESSAGES
        self.require_permissions(channel, wanted)
        if channel.is_thread:
            self.require_thread_postable(channel)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            earlier = self._message_with_nonce(channel, str(nonce))
            if earlier is not None:
                return earlier
        return self._create_message(channel, body, uploads, allowed_flags=rules.CHANNEL_FLAGS)

    def member_message(
        self, channel_id: int, user_id: int, content: str, files: Sequence[tuple[str, bytes]]
    ) -> Message:
        """A member posts a message (text and files) in a channel, as the Discord client would send it: they must be
        in the channel (its guild's member who can view it and has Send Messages, Attach Files for files; in a DM its
        recipient)."""
        channel = self.channel(channel_id)
        guild = self.guild_of(channel)
        if guild is None:
            if channel.recipient is None or user_id != channel.recipient.id:
                raise ControlError(f"user {user_id} is not in the DM channel {channel.id}", 403)
        else:
            if user_id not in guild.members:
                raise ControlError(f"user {user_id} is not a member of guild {guild.id}", 404)
            sends = Permission.SEND_MESSAGES_IN_THREADS if channel.is_thread else Permission.SEND_MESSAGES
            wanted = Permission.VIEW_CHANNEL | sends | (Permission.ATTACH_FILES if files else 0)
            if self.channel_permissions(channel, user_id) & wanted != wanted:
                raise ControlError(f"member {user_id} may not post {'files ' if files else ''}in {channel.id}", 403)
        uploads = [Upload(index=index, filename=name, data=data) for index, (name, data) in enumerate(files)]
        return self._create_message(
            channel, {"content": content}, uploads, allowed_flags=rules.CHANNEL_FLAGS, author_id=user_id
        )

    def _message_with_nonce(self, channel: Channel, nonce: str) -> Message | None:
        message_id = self.nonce_messages.get((channel.id, nonce))
        message = self.messages.get(message_id) if message_id is not None else None
        if message is None or message.created_at < self.clock.now() - NONCE_WINDOW:
            return None
        return message if message.author_id == self.bot.id else None

    def rest_edit_message(
        self, channel_id: int, message_id: int, body: dict[str, Any], uploads: Sequence[Upload]
    ) -> Message:
        channel = self.rest_channel(channel_id)
        message = self.rest_message(channel, message_id)
        if message.author_id != self.bot.id:
            raise errors.not_author()
        if channel.is_thread:
            self.require_thread_editable(channel)
        wanted = 0
        if uploads:
            wanted |= Permission.ATTACH_FILES
        if body.get("embeds"):
            wanted |= Permission.EMBED_LINKS
        if wanted:
            self.require_permissions(channel, wanted)
        return self._edit_message(message, body, uploads, allowed_flags=rules.CHANNEL_FLAGS)

    def rest_delete_message(self, channel_id: int, message_id: int) -> None:
        channel = self.rest_channel(channel_id)
        message = self.rest_message(channel, message_id)
        if message.author_id != self.bot.id:
            self.require_permissions(channel, Permission.MANAGE_MESSAGES)
        self._delete_message(message)

    def rest_get_message(self, channel_id: int, message_id: int) -> Message:
        channel = self.rest_channel(channel_id)
        self.require_permissions(channel, Permission.READ_MESSAGE_HISTORY)
        return self.rest_message(channel, message_id)

    def rest_list_messages(
        self, channel_id: int, *, limit: int, before: int | None, after: int | None, around: int | None
    ) -> list[Message]:
        channel = self.rest_channel(channel_id)
        self.require_permissions(channel, Permission.READ_MESSAGE_HISTORY)
        if not 1 <= limit <= 100:
            raise errors.invalid_form_body(
                {"limit": errors.field_error("NUMBER_TYPE_MAX", "int value should be between 1 and 100.")}
            )
        messages = list(self.public_messages(channel))
        if around is not None:
            older = [m for m in messages if m.id <= around][-((limit + 1) // 2) :]
            newer = [m for m in messages if m.id > around][: limit // 2]
            return list(reversed(older + newer))
        if after is not None:
            return list(reversed([m for m in messages if m.id > after][:limit]))
        if before is not None:
            messages = [m for m in messages if m.id < before]
        return list(reversed(messages[-limit:]))

    # --- interactions: creation (control API) --------------------------------------------------------------------

    def _new_interaction(
        self,
        *,
        kind: int,
        channel: Channel,
        user_id: int,
        data: dict[str, Any],
        locale: str,
        message: Message | None = None,
        command: Command | None = None,
    ) -> Interaction:
        guild = self.guild_of(channel)
        if channel.deleted:
            raise ControlError(f"channel {channel.id} was deleted", 404)
        if channel.archived:
            # Discord's client offers no commands or buttons in an archived thread.
            raise ControlError(f"thread {channel.id} is archived: members cannot use the app there", 409)
        if guild is None:
            if channel.is_private_channel:
                if not any(user.id == user_id for user in channel.recipients):
                    raise ControlError(f"user {user_id} is not in the private channel {channel.id}", 403)
            else:
                assert channel.recipient is not None
                if user_id != channel.recipient.id:
                    raise ControlError(f"only user {channel.recipient.id} is in the DM channel {channel.id}", 403)
        else:
            if user_id not in guild.members:
                raise ControlError(f"user {user_id} is not a member of guild {guild.id}", 404)
            if not self.channel_permissions(channel, user_id) & Permission.VIEW_CHANNEL:
                raise ControlError(f"member {user_id} cannot see channel {channel.id}", 403)
        context = self._context_of(channel)
        owners = self._authorizing_owners(channel, user_id, command, context)
        interaction = Interaction(
            id=self.ids.next(),
            token="aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48),
            type=kind,
            guild_id=channel.guild_id,
            channel_id=channel.id,
            user_id=user_id,
            data=data,
            created_at=self.clock.now(),
            locale=locale,
            message_id=message.id if message is not None else None,
        )
        payload: dict[str, Any] = {
            "id": str(interaction.id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel_id": str(channel.id),
            "token": interaction.token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": owners,
            "attachment_size_limit": self.upload_limit(channel),
            "context": context,
        }
        if guild is None:
            # From a DM or a group DM: the user instead of a member, the channel with its recipients, no guild.
            payload |= {
                "channel": channel.payload(),
                "user": self.users[user_id].payload(),
                "app_permissions": str(DM_APP_PERMISSIONS),
            }
        else:
            member_perms = self.channel_permissions(channel, user_id)
            # Where the guild did not install the bot, the app answers only through the interaction: Discord gives
            # it what an interaction response may do, not a member's permissions.
            app_permissions = self.bot_permissions(channel) if guild.bot_installed else DM_APP_PERMISSIONS
            payload |= {
                "guild_id": str(guild.id),
                "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
                "channel": self.channel_payload_for(channel, user_id),
                "member": guild.members[user_id].payload(permissions=member_perms),
                "guild_locale": guild.locale,
                "app_permissions": str(app_permissions),
            }
        if message is not None:
            payload["message"] = self.message_payload(message)
        interaction.payload = payload
        self.interactions[interaction.id] = interaction
        self.interactions_by_token[interaction.token] = interaction
        self.touch()
        return interaction

    @staticmethod
    def _context_of(channel: Channel) -> int:
        if channel.guild_id is not None:
            return CONTEXT_GUILD
        return CONTEXT_PRIVATE_CHANNEL if channel.is_private_channel else CONTEXT_BOT_DM

    def _authorizing_owners(
        self, channel: Channel, user_id: int, command: Command | None, context: int
    ) -> dict[str, str]:
        """`authorizing_integration_owners`: "0" when the guild's install of the app covers this (the guild id, or
        "0" in the bot's DM), "1" (the user's id) when the member's own install does. A command reaches only the
        installs its `integration_types` name (Discord's default: guild installs alone), in the `contexts` it names.
        Raises when Discord would not offer the command here at all."""
        types = _integration_types(command)
        owners: dict[str, str] = {}
        guild = self.guild_of(channel)
        if GUILD_INSTALL in types:
            if guild is not None and guild.bot_installed:
                owners[str(GUILD_INSTALL)] = str(guild.id)
            elif context == CONTEXT_BOT_DM:
                owners[str(GUILD_INSTALL)] = "0"
        if USER_INSTALL in types and self.users[user_id].app_installed:
            owners[str(USER_INSTALL)] = str(user_id)
        name = f"/{command.name}" if command is not None else "the app"
        if not owners:
            raise ControlError(f"{name} is not installed where channel {channel.id} is (no install covers it)", 409)
        contexts = command.raw.get("contexts") if command is not None else None
        if contexts is not None and context not in contexts:
            raise ControlError(f"{name} is not offered in context {context} (its contexts: {contexts})", 409)
        return owners

    def deliver(self, interaction: Interaction, *, require_bot: bool) -> Interaction:
        """Send INTERACTION_CREATE to the bot's sessions for the guild."""
        delivered = self._emit("INTERACTION_CREATE", interaction.payload, guild_id=interaction.guild_id, intent=None)
        if not delivered and require_bot:
            # Nobody will ever answer: tell the test at once instead of letting it time out.
            del self.interactions[interaction.id]
            del self.interactions_by_token[interaction.token]
            where = f"guild {interaction.guild_id}" if interaction.guild_id is not None else "DMs (shard 0)"
            raise ControlError(f"no bot session is connected for {where}", 409)
        interaction.delivered_to = delivered
        self.touch()
        return interaction

    def command_for(self, guild_id: int | None, name: str, kind: int = 1) -> Command | None:
        """The synced command a member would pick: the guild's own first, then the global one (only that in DMs)."""
        guild_match = None
        global_match = None
        for command in self.commands.values():
            if command.name != name or command.type != kind:
                continue
            if command.guild_id is None:
                global_match = command
            elif command.guild_id == guild_id:
                guild_match = command
        return guild_match or global_match

    def command_interaction(
        self,
        channel_id: int,
        user_id: int,
        name: str,
        options: Mapping[str, Any] | None,
        *,
        locale: str,
        focused: str | None = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
    ) -> Interaction:
        """A member runs a slash command (or, with `focused`, types in one of its options).

        `files` are the values of attachment options: option name -> (filename, bytes), uploaded as the member would.
        """
        channel = self.channel(channel_id)
        path = name.split()
        if not path:
            raise ControlError("empty command name")
        values = dict(options or {})
        for option_name, (filename, content) in (files or {}).items():
            if option_name in values:
                raise ControlError(f"option {option_name!r} is given both as a value and as a file")
            values[option_name] = Upload(index=0, filename=filename, data=content)
        command = self.command_for(channel.guild_id, path[0])
        if channel.is_dm and command is not None and not _usable_in_bot_dm(command):
            raise ControlError(f"/{path[0]} is not available in DMs (guild-only)", 409)
        data: dict[str, Any] = {"id": str(command.id if command else self.ids.next()), "name": path[0], "type": 1}
        if command is not None and command.guild_id is not None:
            data["guild_id"] = str(command.guild_id)
        schema = command.options if command is not None else None
        built, resolved = self._build_options(channel, path[1:], schema, values, focused)
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        kind = AUTOCOMPLETE if focused is not None else APPLICATION_COMMAND
        return self._new_interaction(
            kind=kind, channel=channel, user_id=user_id, data=data, locale=locale, command=command
        )

    def _build_options(
        self,
        channel: Channel,
        subcommands: list[str],
        schema: list[dict[str, Any]] | None,
        values: dict[str, Any],
        focused: str | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        resolved: dict[str, Any] = {}
        if subcommands:
            if schema is None:
                raise ControlError("sub-commands need the command tree to be synced first")
            head = next(
                (
                    o
                    for o in schema
                    if o["name"] == subcommands[0] and o["type"] in (OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP)
                ),
                None,
            )
            if head is None:
                raise ControlError(f"no sub-command {subcommands[0]!r}")
            inner, resolved = self._build_options(channel, subcommands[1:], head.get("options") or [], values, focused)
            entry: dict[str, Any] = {"name": head["name"], "type": head["type"]}
            if inner:
                entry["options"] = inner
            return [entry], resolved
        if focused is not None and focused not in values:
            raise ControlError(f"the focused option {focused!r} needs a (partial) value")
        known = {o["name"]: o for o in schema} if schema is not None else None
        built: list[dict[str, Any]] = []
        for option_name, value in values.items():
            if known is not None and option_name not in known:
                raise ControlError(f"the command has no option {option_name!r} (known: {sorted(known)})")
            option_type = known[option_name]["type"] if known is not None else _infer_option_type(value)
            entry = {"name": option_name, "type": option_type}
            if option_name == focused:
                # Autocomplete sends whatever the member has typed so far, as typed.
                entry["value"] = value
                entry["focused"] = True
            else:
                entry["value"] = self._option_value(channel, option_type, value, resolved)
                choices = known[option_name].get("choices") if known is not None else None
                if choices and entry["value"] not in [choice["value"] for choice in choices]:
                    raise ControlError(f"{value!r} is not one of the choices of {option_name!r}")
            built.append(entry)
        if known is not None and focused is None:
            missing = [n for n, o in known.items() if o.get("required") and n not in values]
            if missing:
                raise ControlError(f"required options missing: {missing}")
        return built, resolved

    def _option_value(self, channel: Channel, option_type: int, value: Any, resolved: dict[str, Any]) -> Any:
        guild = self.guild_of(channel)
        if isinstance(value, Upload) != (option_type == OPT_ATTACHMENT):
            raise ControlError(
                "attachment options take a file (pass it in `files`), and only they do"
                f" (option type {option_type}, value {value!r:.60})"
            )
        if isinstance(value, Upload):
            # What the member uploaded with the command: stored and served like any attachment, and resolved in the
            # interaction (Discord marks it ephemeral: it belongs to no message).
            attachment = self._new_attachment(channel, value.filename, value.data, description=None, ephemeral=True)
            resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload()
            return str(attachment.id)
        if option_type == OPT_STRING:
            return str(value)
        if option_type == OPT_INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ControlError(f"{value!r} is not an integer")
            return value
        if option_type == OPT_NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ControlError(f"{value!r} is not a number")
            return value
        if option_type == OPT_BOOLEAN:
            if not isinstance(value, bool):
                raise ControlError(f"{value!r} is not a boolean")
            return value
        snowflake = int(value)
        if option_type in (OPT_USER, OPT_MENTIONABLE) and snowflake in self.users:
            resolved.setdefault("users", {})[str(snowflake)] = self.users[snowflake].payload()
            member = guild.members.get(snowflake) if guild is not None else None
            if member is not None:
                perms = self.channel_permissions(channel, snowflake)
                resolved.setdefault("members", {})[str(snowflake)] = member.payload(with_user=False, permissions=perms)
            return str(snowflake)
        if option_type in (OPT_ROLE, OPT_MENTIONABLE) and guild is not None and snowflake in guild.roles:
            resolved.setdefault("roles", {})[str(snowflake)] = guild.roles[snowflake].payload()
            return str(snowflake)
        if option_type == OPT_CHANNEL and snowflake in self.channels:
            target = self.channels[snowflake]
            resolved.setdefault("channels", {})[str(snowflake)] = {
                "id": str(target.id),
                "name": target.name,
                "type": target.type,
                "permissions": str(self.channel_permissions(target, self.bot.id)),
                "parent_id": None,
            }
            return str(snowflake)
        raise ControlError(f"option type {option_type} with value {value!r} is not supported or not found")

    def component_interaction(
        self, message_id: int, custom_id: str, user_id: int, *, values: Sequence[str] | None, locale: str
    ) -> Interaction:
        message = self.message(message_id)
        if message.deleted:
            raise ControlError(f"message {message_id} was deleted", 404)
        component = _find_component(message.components, custom_id)
        if component is None:
            raise ControlError(f"message {message_id} has no component with custom_id {custom_id!r}", 404)
        if component.get("disabled"):
            raise ControlError(f"component {custom_id!r} is disabled", 409)
        if message.ephemeral and message.interaction_id is not None:
            owner = self.interactions[message.interaction_id].user_id
            if owner != user_id:
                raise ControlError("only the member who received an ephemeral message can use its components", 403)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if component["type"] == 2:
            if values is not None:
                raise ControlError("a button takes no values")
        else:
            data["values"] = list(values or [])
        channel = self.channels[message.channel_id]
        return self._new_interaction(
            kind=MESSAGE_COMPONENT, channel=channel, user_id=user_id, data=data, locale=locale, message=message
        )

    def message_command_interaction(self, message_id: int, user_id: int, name: str, *, locale: str) -> Interaction:
        """A member picks the message command `name` from a message's context menu (Apps > name)."""
        message = self.message(message_id)
        if message.deleted or message.ephemeral:
            raise ControlError(f"message {message_id} is not shown in its channel (deleted or ephemeral)", 404)
        channel = self.channels[message.channel_id]
        command = self.command_for(channel.guild_id, name, COMMAND_MESSAGE)
        if command is None:
            raise ControlError(f"no message command {name!r} was synced for this channel", 404)
        if channel.is_dm and not _usable_in_bot_dm(command):
            raise ControlError(f"the message command {name!r} is not available in DMs (guild-only)", 409)
        data: dict[str, Any] = {
            "id": str(command.id),
            "name": command.name,
            "type": COMMAND_MESSAGE,
            "target_id": str(message.id),
            "resolved": {"messages": {str(message.id): self.message_payload(message, with_reference=False)}},
        }
        if command.guild_id is not None:
            data["guild_id"] = str(command.guild_id)
        return self._new_interaction(
            kind=APPLICATION_COMMAND, channel=channel, user_id=user_id, data=data, locale=locale, command=command
        )

    def modal_submit_interaction(
        self, interaction_id: int, values: Mapping[str, str | Sequence[str]], *, locale: str
    ) -> Interaction:
        """The member who was shown the modal of `interaction_id` submits it with `values` (custom_id -> text).

        The Discord client will not send a submission that breaks the inputs' rules (a required input left empty, a
        text shorter than min_length or longer than max_length): those raise ControlError here.
        """
        opened = self.interaction(interaction_id)
        modal = opened.modal
        if modal is None:
            raise ControlError(f"interaction {interaction_id} was not answered with a modal", 409)
        if opened.modal_submit_id is not None:
            raise ControlError(f"the modal of interaction {interaction_id} was already submitted", 409)
        inputs = _modal_inputs(modal)
        unknown = sorted(set(values) - set(inputs))
        if unknown:
            raise ControlError(f"the modal has no inputs {unknown} (its inputs: {sorted(inputs)})")
        submitted: list[dict[str, Any]] = []
        for number, component in enumerate(modal.get("components") or [], start=1):
            submitted.append(_submitted_component(component, number, values))
        message = self.messages.get(opened.message_id) if opened.message_id is not None else None
        channel = self.channels[opened.channel_id]
        data = {"custom_id": modal["custom_id"], "components": submitted}
        interaction = self._new_interaction(
            kind=MODAL_SUBMIT, channel=channel, user_id=opened.user_id, data=data, locale=locale, message=message
        )
        opened.modal_submit_id = interaction.id
        return interaction

    # --- interactions: REST (callback and webhooks) --------------------------------------------------------------

    def callback(
        self, interaction_id: int, token: str, body: dict[str, Any], uploads: Sequence[Upload]
    ) -> tuple[Interaction, Message | None]:
        """The first response to an interaction. Returns the interaction and the message it created or changed."""
        interaction = self.interactions.get(interaction_id)
        if interaction is None or not secrets.compare_digest(interaction.token, token):
            raise errors.unknown_interaction()
        if interaction.response is not None:
            raise errors.already_acknowledged()
        if self.clock.now() - interaction.created_at > RESPONSE_WINDOW:
            raise errors.unknown_interaction()
        callback_type = body.get("type")
        if callback_type not in ALLOWED_CALLBACKS.get(interaction.type, set()):
            raise errors.invalid_form_body(
                {"type": errors.field_error("INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type")}
            )
        data: dict[str, Any] = body.get("data") or {}
        channel = self.channels[interaction.channel_id]
        ephemeral = bool((data.get("flags") or 0) & rules.FLAG_EPHEMERAL)
        message: Message | None = None
        if callback_type == CHANNEL_MESSAGE:
            message_type = MESSAGE_CHAT_INPUT_COMMAND if interaction.type == APPLICATION_COMMAND else MESSAGE_DEFAULT
            message = self._create_message(
                channel,
                data,
                uploads,
                allowed_flags=rules.INTERACTION_FLAGS,
                interaction=interaction,
                message_type=message_type,
            )
            interaction.original_message_id = message.id
        elif callback_type == DEFERRED_CHANNEL_MESSAGE:
            message_type = MESSAGE_CHAT_INPUT_COMMAND if interaction.type == APPLICATION_COMMAND else MESSAGE_DEFAULT
            flags = (data.get("flags") or 0) & rules.FLAG_EPHEMERAL
            message = self._create_message(
                channel,
                {"flags": flags},
                (),
                allowed_flags=rules.INTERACTION_FLAGS,
                interaction=interaction,
                message_type=message_type,
                extra_flags=rules.FLAG_LOADING,
                creating=False,
            )
            interaction.original_message_id = message.id
        elif callback_type == UPDATE_MESSAGE:
            target = self.messages[interaction.message_id or 0]
            message = self._edit_message(target, data, uploads, allowed_flags=rules.INTERACTION_FLAGS)
        elif callback_type == DEFERRED_UPDATE_MESSAGE:
            message = None
        elif callback_type == AUTOCOMPLETE_RESULT:
            rules.check_choices(data.get("choices", []))
            interaction.choices = list(data.get("choices", []))
        elif callback_type == MODAL:
            rules.check_modal(data)
            interaction.modal = data
        interaction.response = Response(type=callback_type, data=data, ephemeral=ephemeral, at=self.clock.now())
        self.touch()
        return interaction, message

    def callback_body(self, interaction: Interaction, message: Message | None) -> dict[str, Any]:
        """The InteractionCallbackResponse discord.py reads when it asks `?with_response=true`."""
        assert interaction.response is not None
        summary: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        resource: dict[str, Any] = {"type": interaction.response.type}
        if message is not None:
            summary["response_message_id"] = str(message.id)
            summary["response_message_loading"] = bool(message.flags & rules.FLAG_LOADING)
            summary["response_message_ephemeral"] = message.ephemeral
            resource["message"] = self.message_payload(message)
        return {"interaction": summary, "resource": resource}

    def _webhook_interaction(self, application_id: int, token: str) -> Interaction:
        interaction = self.interactions_by_token.get(token)
        if interaction is None or application_id != self.application_id:
            raise errors.unknown_webhook()
        if self.clock.now() - interaction.created_at > TOKEN_LIFETIME:
            raise errors.invalid_webhook_token()
        return interaction

    def followup(self, application_id: int, token: str, body: dict[str, Any], uploads: Sequence[Upload]) -> Message:
        interaction = self._webhook_interaction(application_id, token)
        if interaction.response is None:
            raise errors.unknown_webhook()
        original = self.messages.get(interaction.original_message_id or 0)
        if (
            interaction.response.type == DEFERRED_CHANNEL_MESSAGE
            and original is not None
            and original.flags & rules.FLAG_LOADING
        ):
            # The first followup after a "thinking" defer replaces the loading message (its ephemerality stays).
            body = dict(body)
            flags = body.pop("flags", None)
            if isinstance(flags, int) and flags & rules.FLAG_COMPONENTS_V2:
                body["flags"] = rules.FLAG_COMPONENTS_V2
            return self._edit_message(original, body, uploads, allowed_flags=rules.INTERACTION_FLAGS)
        channel = self.channels[interaction.channel_id]
        message = self._create_message(
            channel, body, uploads, allowed_flags=rules.INTERACTION_FLAGS, interaction=interaction
        )
        interaction.followup_ids.append(message.id)
        self.touch()
        return message

    def webhook_message(self, application_id: int, token: str, message_ref: str) -> tuple[Interaction, Message]:
        interaction = self._webhook_interaction(application_id, token)
        if interaction.response is None:
            raise errors.unknown_webhook()
        if message_ref == "@original":
            message_id = interaction.original_message_id
            if message_id is None and interaction.response.type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
                message_id = interaction.message_id
        else:
            message_id = int(message_ref)
            if message_id not in (*interaction.followup_ids, interaction.original_message_id, interaction.message_id):
                raise errors.unknown_message()
        message = self.messages.get(message_id or 0)
        if message is None or message.deleted:
            raise errors.unknown_message()
        return interaction, message

    def edit_webhook_message(
        self, application_id: int, token: str, message_ref: str, body: dict[str, Any], uploads: Sequence[Upload]
    ) -> Message:
        _, message = self.webhook_message(application_id, token, message_ref)
        return self._edit_message(message, body, uploads, allowed_flags=rules.INTERACTION_FLAGS)

    def delete_webhook_message(self, application_id: int, token: str, message_ref: str) -> None:
        _, message = self.webhook_message(application_id, token, message_ref)
        self._delete_message(message)

    # --- commands ------------------------------------------------------------------------------------------------

    def overwrite_commands(self, application_id: int, guild_id: int | None, payload: Any) -> list[Command]:
        if application_id != self.application_id:
            raise errors.ApiError(403, 50001, "Missing Access")
        if guild_id is not None and guild_id not in self.guilds:
            raise errors.unknown_guild()
        if not isinstance(payload, list):
            raise errors.invalid_form_body({"_errors": [{"code": "LIST_TYPE_CONVERT", "message": "Must be an array"}]})
        for index, raw in enumerate(payload):
            rules.check_command(raw, index)
        rules.check_command_counts(payload)
        existing = {(c.name, c.type): c for c in self.commands.values() if c.guild_id == guild_id}
        for command in existing.values():
            del self.commands[command.id]
        result = []
        for raw in payload:
            kind = int(raw.get("type", 1))
            previous = existing.get((raw["name"], kind))
            command = Command(
                id=previous.id if previous else self.ids.next(),
                application_id=self.application_id,
                guild_id=guild_id,
                name=raw["name"],
                type=kind,
                description=raw.get("description", ""),
                options=list(raw.get("options") or []),
                raw=dict(raw),
                version=self.ids.next(),
            )
            self.commands[command.id] = command
            result.append(command)
        self.touch()
        log.info("commands synced for %s: %s", guild_id or "global", [c.name for c in result])
        return result

    def upsert_command(self, application_id: int, guild_id: int | None, raw: Any) -> Command:
        if application_id != self.application_id:
            raise errors.missing_access()
        rules.check_command(raw, 0)
        others = [
            c.raw
            for c in self.commands.values()
            if c.guild_id == guild_id and (c.name, c.type) != (raw["name"], int(raw.get("type", 1)))
        ]
        commands = self.overwrite_commands(application_id, guild_id, [*others, raw])
        return next(c for c in commands if c.name == raw["name"])

    def scoped_commands(self, application_id: int, guild_id: int | None) -> list[Command]:
        if application_id != self.application_id:
            raise errors.missing_access()
        if guild_id is not None and guild_id not in self.guilds:
            raise errors.unknown_guild()
        return [c for c in self.commands.values() if c.guild_id == guild_id]


def _exact_overwrite(target_id: int, permissions: int) -> Overwrite:
    """A member overwrite that leaves the target with exactly `permissions` in the channel."""
    return Overwrite(id=target_id, type=OVERWRITE_MEMBER, allow=permissions, deny=ALL_PERMISSIONS & ~permissions)


def _integration_types(command: Command | None) -> list[int]:
    """The installs a synced command reaches: its `integration_types`, Discord's default being guild installs only.
    A component or form (no command) reaches both: its message came from an interaction already allowed."""
    if command is None:
        return [GUILD_INSTALL, USER_INSTALL]
    types = command.raw.get("integration_types")
    return [int(kind) for kind in types] if isinstance(types, list) else [GUILD_INSTALL]


def _usable_in_bot_dm(command: Command) -> bool:
    """A global command is offered in the bot's DM unless its `contexts` leave BOT_DM out (or, the older way,
    `dm_permission` is false)."""
    contexts = command.raw.get("contexts")
    if contexts is not None:
        return CONTEXT_BOT_DM in contexts
    return command.raw.get("dm_permission") is not False


def _message_intent(message: Message) -> int:
    return INTENT_GUILD_MESSAGES if message.guild_id is not None else INTENT_DIRECT_MESSAGES


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return OPT_BOOLEAN
    if isinstance(value, int):
        return OPT_INTEGER
    if isinstance(value, float):
        return OPT_NUMBER
    if isinstance(value, str):
        return OPT_STRING
    if isinstance(value, Upload):
        return OPT_ATTACHMENT
    raise ControlError(f"cannot tell the option type of {value!r}; sync the command tree first")


def _modal_inputs(modal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A modal's inputs by custom_id, with the label the member reads next to each."""
    inputs: dict[str, dict[str, Any]] = {}
    for component in modal.get("components") or []:
        if component.get("type") == rules.LABEL:
            inner = component["component"]
            inputs[inner["custom_id"]] = inner | {"label": component.get("label")}
        elif component.get("type") == rules.ACTION_ROW:
            inner = component["components"][0]
            inputs[inner["custom_id"]] = inner
    return inputs


def _submitted_component(
    component: dict[str, Any], number: int, values: Mapping[str, str | Sequence[str]]
) -> dict[str, Any]:
    """One top-level component of a MODAL_SUBMIT, in the shape the modal was sent in (label or action row)."""
    kind = component.get("type")
    if kind == rules.LABEL:
        return {"type": kind, "id": number, "component": _submitted_input(component["component"], values, component)}
    if kind == rules.ACTION_ROW:
        inner = component["components"][0]
        return {"type": kind, "id": number, "components": [_submitted_input(inner, values, inner)]}
    return {"type": kind, "id": number}


def _submitted_input(
    spec: dict[str, Any], values: Mapping[str, str | Sequence[str]], labelled: dict[str, Any]
) -> dict[str, Any]:
    custom_id = spec["custom_id"]
    label = labelled.get("label") or custom_id
    entry: dict[str, Any] = {"type": spec["type"], "id": spec.get("id") or 0, "custom_id": custom_id}
    given = values.get(custom_id)
    if spec["type"] != rules.TEXT_INPUT:
        chosen = [given] if isinstance(given, str) else list(given or [])
        if spec.get("required", True) and not chosen:
            raise ControlError(f"{label!r} ({custom_id}) is required: choose at least one option")
        entry["values"] = chosen
        return entry
    if given is not None and not isinstance(given, str):
        raise ControlError(f"{label!r} ({custom_id}) is a text input: its value is a string")
    value = given if given is not None else str(spec.get("value") or "")
    required = spec.get("required", True)
    if required and not value:
        raise ControlError(f"{label!r} ({custom_id}) is required and was left empty")
    low, high = spec.get("min_length"), spec.get("max_length")
    if value and low is not None and len(value) < low:
        raise ControlError(f"{label!r} ({custom_id}) needs at least {low} characters ({len(value)} given)")
    if high is not None and len(value) > high:
        raise ControlError(f"{label!r} ({custom_id}) takes at most {high} characters ({len(value)} given)")
    if len(value) > rules.TEXT_INPUT_VALUE_LIMIT:
        raise ControlError(f"{label!r} ({custom_id}) takes at most {rules.TEXT_INPUT_VALUE_LIMIT} characters")
    entry["value"] = value
    return entry


def decode_file_list(raw: Any) -> list[tuple[str, bytes]]:
    """A message's `files` as the control API carries them ([{filename, data: base64}]), or as (filename, bytes)."""
    return list(decode_files({str(index): entry for index, entry in enumerate(raw or [])}).values())


def decode_files(raw: Any) -> dict[str, tuple[str, bytes]]:
    """`files` as the control API carries them ({option: {filename, data: base64}}) back into (filename, bytes)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ControlError("files must be an object: option name -> {filename, data (base64)}")
    decoded: dict[str, tuple[str, bytes]] = {}
    for option_name, entry in raw.items():
        if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], bytes):
            decoded[option_name] = (str(entry[0]), entry[1])
            continue
        try:
            decoded[option_name] = (str(entry["filename"]), base64.b64decode(entry["data"], validate=True))
        except (KeyError, TypeError, binascii.Error):
            raise ControlError(f"file {option_name!r} needs a filename and base64 data") from None
    return decoded


def _number_components(components: list[dict[str, Any]]) -> None:
    """Give every component without an `id` the next free number, depth first, as Discord does when it stores them."""
    taken: set[int] = set()
    ordered: list[dict[str, Any]] = []

    def walk(component: dict[str, Any]) -> None:
        ordered.append(component)
        if isinstance(component.get("id"), int) and component["id"] > 0:
            taken.add(component["id"])
        for child in component.get("components") or []:
            walk(child)
        if isinstance(component.get("accessory"), dict):
            walk(component["accessory"])

    for component in components:
        walk(component)
    number = 0
    for component in ordered:
        if not (isinstance(component.get("id"), int) and component["id"] > 0):
            number += 1
            while number in taken:
                number += 1
            component["id"] = number


def _find_component(components: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    for component in components:
        if component.get("custom_id") == custom_id:
            return component
        found = _find_component(component.get("components") or [], custom_id)
        if found is not None:
            return found
        accessory = component.get("accessory")
        if isinstance(accessory, dict) and accessory.get("custom_id") == custom_id:
            return accessory
    return None


def _describe_file(filename: str, data: bytes) -> tuple[str | None, int | None, int | None]:
    """Content type and, for images, their size in pixels (what Discord reports for an upload)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "")
            return mime, image.width, image.height
    except (UnidentifiedImageError, OSError, ValueError):
        guessed, _ = mimetypes.guess_type(filename)
        return guessed, None, None


def _notifying_text(content: str, components: Sequence[dict[str, Any]]) -> str:
    """The text whose mentions notify: the content and, in a Components V2 message, every text display (Discord
    parses their mentions under the message's allowed_mentions: discord/discord-api-docs,
    docs/components/reference.mdx, "Text Display")."""
    texts = [content]

    def walk(component: dict[str, Any]) -> None:
        if component.get("type") == rules.TEXT_DISPLAY:
            texts.append(str(component.get("content") or ""))
        for child in component.get("components") or []:
            walk(child)
        accessory = component.get("accessory")
        if isinstance(accessory, dict):
            walk(accessory)

    for component in components:
        walk(component)
    return "\n".join(texts)
