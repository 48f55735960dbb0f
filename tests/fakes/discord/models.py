"""The fake's world, as plain mutable records. Payload shapes follow Discord's API v10."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.fakes.discord.clock import iso

MIB = 1024 * 1024
# Upload limit per premium tier (Guild.filesize_limit in discord.py).
TIER_UPLOAD_LIMITS = {0: 10 * MIB, 1: 10 * MIB, 2: 50 * MIB, 3: 100 * MIB}

OVERWRITE_ROLE = 0
OVERWRITE_MEMBER = 1

# Channel types this fake models besides guild channels (whose type is whatever the test asked for).
CHANNEL_DM = 1
CHANNEL_GROUP_DM = 3
# A DM's upload limit: Discord's default for a user without Nitro.
DM_UPLOAD_LIMIT = 10 * MIB

# Guild channel types the thread rules need (Discord's numbering).
CHANNEL_TEXT = 0
CHANNEL_ANNOUNCEMENT = 5
CHANNEL_ANNOUNCEMENT_THREAD = 10
CHANNEL_PUBLIC_THREAD = 11
CHANNEL_PRIVATE_THREAD = 12
CHANNEL_FORUM = 15
THREAD_TYPES = frozenset({CHANNEL_ANNOUNCEMENT_THREAD, CHANNEL_PUBLIC_THREAD, CHANNEL_PRIVATE_THREAD})
# What a thread shows in the channel list for, in minutes (Discord's default choice).
DEFAULT_AUTO_ARCHIVE_MINUTES = 1440


@dataclass
class User:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None
    # Whether the user accepts direct messages from the bot (their privacy setting); closed: 50007.
    dms_open: bool = True
    # Whether the user installed the app on their account (a user install): its commands follow them everywhere.
    app_installed: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    mentionable: bool = False
    managed: bool = False
    bot_id: int | None = None

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class Overwrite:
    id: int
    type: int
    allow: int
    deny: int

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class Channel:
    """A guild channel, or (with `recipient` and no `guild_id`) the DM channel between the bot and one user."""

    id: int
    guild_id: int | None
    name: str
    type: int = 0
    position: int = 0
    topic: str | None = None
    upload_limit: int | None = None
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    last_message_id: int | None = None
    recipient: User | None = None
    # Discord's age-restricted flag (a guild channel's `nsfw`).
    nsfw: bool = False
    # A thread's own fields: its parent channel (text, announcement or forum), who started it, its state and its
    # members (a private thread is seen only by them and by those with Manage Threads).
    parent_id: int | None = None
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    invitable: bool = True
    thread_member_ids: list[int] = field(default_factory=list)
    created_at: datetime | None = None
    archive_timestamp: datetime | None = None
    message_count: int = 0
    # A deleted channel answers 404 10003 from then on; its record stays for the test to read.
    deleted: bool = False
    # A private channel the bot is not in (a group DM, type 3, or a DM between two users, type 1): its members.
    recipients: list[User] = field(default_factory=list)

    @property
    def is_dm(self) -> bool:
        return self.recipient is not None

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    def thread_payload(self) -> dict[str, Any]:
        """A thread as Discord sends it (GET /channels/{id}, THREAD_CREATE, an interaction's `channel`)."""
        assert self.created_at is not None
        return {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "type": self.type,
            "name": self.name,
            "parent_id": str(self.parent_id),
            "owner_id": str(self.owner_id),
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "rate_limit_per_user": 0,
            "flags": 0,
            "message_count": self.message_count,
            "total_message_sent": self.message_count,
            "member_count": min(len(self.thread_member_ids), 50),
            "thread_metadata": {
                "archived": self.archived,
                "auto_archive_duration": DEFAULT_AUTO_ARCHIVE_MINUTES,
                "archive_timestamp": iso(self.archive_timestamp or self.created_at),
                "locked": self.locked,
                "invitable": self.invitable,
                "create_timestamp": iso(self.created_at),
            },
        }

    @property
    def is_private_channel(self) -> bool:
        """A group DM or a DM between others: the bot is no member, only a user install reaches it."""
        return self.guild_id is None and self.recipient is None

    def payload(self) -> dict[str, Any]:
        if self.is_private_channel:
            return {
                "id": str(self.id),
                "type": self.type,
                "name": self.name or None,
                "icon": None,
                "owner_id": str(self.recipients[0].id) if self.recipients else None,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "flags": 0,
                "recipients": [user.payload() for user in self.recipients],
            }
        if self.recipient is not None:
            # A DM channel as Discord returns it (POST /users/@me/channels, GET /channels/{id}): no guild, no name.
            return {
                "id": str(self.id),
                "type": CHANNEL_DM,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "flags": 0,
                "recipients": [self.recipient.payload()],
            }
        if self.is_thread:
            return self.thread_payload()
        return {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "topic": self.topic,
            "nsfw": self.nsfw,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "permission_overwrites": [overwrite.payload() for overwrite in self.overwrites.values()],
            "flags": 0,
        }


@dataclass
class Member:
    user: User
    guild_id: int
    role_ids: list[int]
    joined_at: datetime
    nick: str | None = None

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(role_id) for role_id in self.role_ids],
            "joined_at": iso(self.joined_at),
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    premium_tier: int
    created_at: datetime
    locale: str = "en-US"
    roles: dict[int, Role] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    bot_role_id: int = 0
    # Whether the guild installed the bot (a guild install, the bot a member); False: only user installs reach it.
    bot_installed: bool = True

    @property
    def upload_limit(self) -> int:
        return TIER_UPLOAD_LIMITS.get(self.premium_tier, 10 * MIB)


@dataclass
class Attachment:
    id: int
    channel_id: int
    filename: str
    data: bytes
    content_type: str | None
    width: int | None
    height: int | None
    description: str | None
    url: str
    proxy_url: str
    ephemeral: bool = False

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.proxy_url,
            "content_type": self.content_type,
            "flags": 0,
        }
        if self.width is not None and self.height is not None:
            data["width"] = self.width
            data["height"] = self.height
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass
class Pings:
    users: list[int] = field(default_factory=list)
    roles: list[int] = field(default_factory=list)
    everyone: bool = False
    replied_user: int | None = None

    @property
    def anyone(self) -> bool:
        return bool(self.users or self.roles or self.everyone or self.replied_user)


@dataclass
class Version:
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[Attachment]
    flags: int
    at: datetime


@dataclass
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[Attachment]
    flags: int
    created_at: datetime
    type: int = 0
    tts: bool = False
    nonce: str | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    message_reference: dict[str, Any] | None = None
    allowed_mentions: dict[str, Any] | None = None
    pings: Pings = field(default_factory=Pings)
    interaction_id: int | None = None
    edited_at: datetime | None = None
    deleted: bool = False
    history: list[Version] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & (1 << 6))

    def snapshot(self, at: datetime) -> Version:
        return Version(
            content=self.content,
            embeds=self.embeds,
            components=self.components,
            attachments=list(self.attachments),
            flags=self.flags,
            at=at,
        )


@dataclass
class Response:
    """An interaction's acknowledgement: the callback type and the data sent with it."""

    type: int
    data: dict[str, Any]
    ephemeral: bool
    at: datetime


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    guild_id: int | None
    channel_id: int
    user_id: int
    data: dict[str, Any]
    created_at: datetime
    locale: str = "en-US"
    message_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    response: Response | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    choices: list[dict[str, Any]] | None = None
    modal: dict[str, Any] | None = None
    # The MODAL_SUBMIT interaction that answered this interaction's modal (a modal is submitted once).
    modal_submit_id: int | None = None
    delivered_to: list[str] = field(default_factory=list)


@dataclass
class Command:
    id: int
    application_id: int
    guild_id: int | None
    name: str
    type: int
    description: str
    options: list[dict[str, Any]]
    raw: dict[str, Any]
    version: int

    def payload(self) -> dict[str, Any]:
        data = dict(self.raw)
        data.update(
            id=str(self.id),
            application_id=str(self.application_id),
            name=self.name,
            type=self.type,
            description=self.description,
            options=self.options,
            version=str(self.version),
            default_member_permissions=self.raw.get("default_member_permissions"),
            nsfw=self.raw.get("nsfw", False),
        )
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass
class Upload:
    """One file of a multipart request: `index` is n in `files[n]`."""

    index: int
    filename: str
    data: bytes
