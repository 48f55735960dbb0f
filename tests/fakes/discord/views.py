"""What the control API returns: plain JSON-shaped dicts, identical in-process and over HTTP.

Ids are integers. Raw Discord payloads (embeds, components, command options) are kept as Discord would store them.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class InfoView(TypedDict):
    api_base_url: str
    gateway_url: str
    http_base_url: str
    application_id: int
    bot_user_id: int
    application_owner_id: int
    bot_token: str
    now: str


class RoleView(TypedDict):
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int
    mentionable: bool
    managed: bool


class OverwriteView(TypedDict):
    id: int
    type: Literal["role", "member"]
    allow: int
    deny: int


class ChannelView(TypedDict):
    """A guild channel, or a DM channel (type 1: `guild_id` None, `recipient_id` the user, `name` empty)."""

    id: int
    guild_id: int | None
    recipient_id: int | None
    name: str
    type: int
    position: int
    topic: str | None
    upload_limit: int
    overwrites: list[OverwriteView]
    bot_permissions: int
    # A thread's parent, members and state (None, [] and False for other channels); a deleted channel stays readable.
    parent_id: int | None
    owner_id: int | None
    member_ids: list[int]
    archived: bool
    locked: bool
    deleted: bool


class MemberView(TypedDict):
    user_id: int
    guild_id: int
    username: str
    nick: str | None
    bot: bool
    role_ids: list[int]
    permissions: int
    dms_open: bool


class GuildView(TypedDict):
    id: int
    name: str
    owner_id: int
    premium_tier: int
    upload_limit: int
    everyone_role_id: int
    bot_role_id: int
    roles: list[RoleView]
    channels: list[ChannelView]
    members: list[MemberView]


class AttachmentView(TypedDict):
    id: int
    filename: str
    size: int
    content_type: str | None
    url: str
    proxy_url: str
    width: int | None
    height: int | None
    description: str | None


class PingsView(TypedDict):
    users: list[int]
    roles: list[int]
    everyone: bool
    replied_user: int | None


class VersionView(TypedDict):
    """One state of a message; `at` is when it became current (creation or an edit)."""

    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[AttachmentView]
    flags: int
    at: str


class MessageView(TypedDict):
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    webhook_id: int | None
    type: int
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[AttachmentView]
    flags: int
    ephemeral: bool
    tts: bool
    message_reference: dict[str, Any] | None
    allowed_mentions: dict[str, Any] | None
    pings: PingsView
    pinged_anyone: bool
    interaction_id: int | None
    created_at: str
    edited_at: str | None
    deleted: bool
    history: list[VersionView]


class ResponseView(TypedDict):
    """The interaction's first callback (its acknowledgement)."""

    type: int
    ephemeral: bool
    data: dict[str, Any]
    at: str


class InteractionView(TypedDict):
    id: int
    token: str
    type: int
    application_id: int
    guild_id: int | None
    channel_id: int
    user_id: int
    name: str | None
    custom_id: str | None
    data: dict[str, Any]
    message_id: int | None
    created_at: str
    expires_at: str
    response: ResponseView | None
    original_message: MessageView | None
    followups: list[MessageView]
    choices: list[dict[str, Any]] | None
    modal: dict[str, Any] | None
    delivered_to: list[str]


class SessionView(TypedDict):
    id: str
    shard: list[int] | None
    intents: int
    connected: bool
    resumable: bool
    ready: bool
    seq: int
    connections: int
    resumes: int
    replayed: int
    guild_ids: list[int]
    last_close_code: int | None


class CommandView(TypedDict):
    id: int
    application_id: int
    guild_id: int | None
    name: str
    description: str
    type: int
    options: list[dict[str, Any]]
    # As the bot synced them (locale → text), None when it sent none; its options keep theirs in `options`.
    name_localizations: dict[str, str] | None
    description_localizations: dict[str, str] | None
    # What the bot synced: the installs the command reaches (0 guild, 1 user) and where (0 guild, 1 the bot's DM,
    # 2 private channels); None when it sent none (Discord's defaults).
    integration_types: list[int] | None
    contexts: list[int] | None


class RequestView(TypedDict):
    """One REST request the fake answered; `path` is relative to `/api/v10`; `injected`: the reply was a fault a test
    injected (`inject_error`, `inject_rate_limit`), not the fake's own answer."""

    method: str
    path: str
    query: str
    status: int
    code: int | None
    at: str
    injected: bool


class HeldRequestView(TypedDict):
    """A REST request already handled whose reply is being held back (`inject_delay`); `multipart`: it uploads
    files."""

    method: str
    path: str
    multipart: bool
    since: str


class BucketStatsView(TypedDict):
    """The requests counted in one bucket, and the 429s that bucket caused."""

    requests: int
    limited: int


class RateLimitStatsView(TypedDict):
    """What the rate limits saw: REST requests (injected faults aside) and the 429s the limits sent.

    `limited` counts every such 429, `limited_global` those of the global limit; `by_bucket` counts each bucket's
    requests and its own 429s (so `limited == limited_global + sum of by_bucket limited`).
    """

    enabled: bool
    requests: int
    limited: int
    limited_global: int
    by_bucket: dict[str, BucketStatsView]


class LimitView(TypedDict):
    count: int
    per: float


class RateLimitsView(TypedDict):
    """Whether the rate limits are on, and each bucket kind's limit (`global` too)."""

    enabled: bool
    limits: dict[str, LimitView]
