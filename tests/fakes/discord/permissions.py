"""Discord's permission bits and how a member's permissions in a channel are computed from roles and overwrites."""

from __future__ import annotations

from enum import IntFlag


class Permission(IntFlag):
    """The permission bits a slash-command bot deals with (values as in Discord's API)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40


# Every bit Discord defines today fits below 2**51; "all" must cover bits this enum does not name.
ALL_PERMISSIONS = (1 << 51) - 1

# A new server's @everyone role (the parts that matter here).
DEFAULT_EVERYONE_PERMISSIONS = int(
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.SEND_MESSAGES_IN_THREADS
)

# What the README's invite link grants the bot's managed role.
DEFAULT_BOT_PERMISSIONS = int(
    Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.SEND_MESSAGES_IN_THREADS
    | Permission.CREATE_PUBLIC_THREADS
)

# What the bot and its one recipient may do in a DM (there are no roles or overwrites there).
DM_PERMISSIONS = int(
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.ADD_REACTIONS
    | Permission.USE_EXTERNAL_EMOJIS
)

# The `app_permissions` Discord puts in an interaction from the bot's DM (442368): not a channel computation,
# just what an interaction response there may carry.
DM_APP_PERMISSIONS = int(
    Permission.EMBED_LINKS | Permission.ATTACH_FILES | Permission.MENTION_EVERYONE | Permission.USE_EXTERNAL_EMOJIS
)

# Without Send Messages, Discord also withholds these (its "implicit permissions").
_NEEDS_SEND = int(
    Permission.SEND_TTS_MESSAGES | Permission.MENTION_EVERYONE | Permission.ATTACH_FILES | Permission.EMBED_LINKS
)


def has(permissions: int, wanted: int) -> bool:
    return permissions & wanted == wanted


def apply_overwrites(
    base: int,
    *,
    everyone: tuple[int, int] | None,
    roles: list[tuple[int, int]],
    member: tuple[int, int] | None,
    sends: int = Permission.SEND_MESSAGES,
) -> int:
    """Channel permissions from guild-level `base` and (allow, deny) overwrites, in Discord's order; `sends` is the
    bit without which the implicit ones go (Send Messages in Threads, in a thread)."""
    if base & Permission.ADMINISTRATOR:
        return ALL_PERMISSIONS
    perms = base
    if everyone is not None:
        allow, deny = everyone
        perms = (perms & ~deny) | allow
    role_allow = 0
    role_deny = 0
    for allow, deny in roles:
        role_allow |= allow
        role_deny |= deny
    perms = (perms & ~role_deny) | role_allow
    if member is not None:
        allow, deny = member
        perms = (perms & ~deny) | allow
    if not perms & Permission.VIEW_CHANNEL:
        return 0
    if not perms & sends:
        perms &= ~_NEEDS_SEND
    return perms


def missing_names(permissions: int, wanted: int) -> list[str]:
    """The names of the bits of `wanted` that `permissions` lacks (for log lines and error messages)."""
    return [flag.name or str(int(flag)) for flag in Permission if wanted & flag and not permissions & flag]
