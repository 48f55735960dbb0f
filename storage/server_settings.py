"""A guild's own settings in Redis (`/settings`): one hash of text fields, and a capped log of their changes.

The store keeps text and decides nothing: what the fields mean, and which values are allowed, is
`jobs.server_settings`'s. A change is one Lua call that writes the fields and logs the change together, and only if
nobody changed the settings since they were read (`VERSION_FIELD`), so two changes at once never lose one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from storage.keys import Keys
from storage.store import SCRIPT_SOURCES, Reply

# Counted up by every change; a change decided from an older version is refused (`SettingsVersionError`).
VERSION_FIELD = "version"
# The log keeps this many changes per guild, newest first: enough to see who changed what lately, bounded for ever.
SETTINGS_LOG_MAX = 50


class SettingsVersionError(Exception):
    """The settings changed since they were read: read them again and decide again."""


@dataclass(frozen=True)
class StoredSettings:
    """A guild's settings as stored: its fields (without the version) and the version they were read at."""

    fields: dict[str, str]
    version: int = 0


class ServerSettingsStore:
    """Reads and changes guilds' settings hashes and their change logs."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, log_max: int = SETTINGS_LOG_MAX) -> None:
        self.redis = redis
        self.keys = keys
        self.log_max = log_max
        self._change = redis.register_script(SCRIPT_SOURCES["settings_change"])

    async def read(self, guild_id: int) -> StoredSettings:
        """The guild's settings (one HGETALL); no fields when it has never changed any."""
        raw = await self.redis.hgetall(self.keys.guild_settings(guild_id))
        fields = {_text(name): _text(value) for name, value in raw.items()}
        version = fields.pop(VERSION_FIELD, "0")
        return StoredSettings(fields, int(version) if version.isdigit() else 0)

    async def change(
        self,
        guild_id: int,
        read: StoredSettings,
        entry: str,
        *,
        changed: Mapping[str, str] | None = None,
        removed: Sequence[str] = (),
        clear: bool = False,
    ) -> int:
        """Write `changed`, remove `removed` (with `clear`, every field first) and log `entry`, if the settings are
        still at `read`'s version; the new version. Raises `SettingsVersionError` when they are not."""
        pairs = [item for name, value in (changed or {}).items() for item in (name, value)]
        reply = Reply(
            await self._change(
                keys=[self.keys.guild_settings(guild_id), self.keys.guild_settings_log(guild_id)],
                args=[read.version, entry, self.log_max, "1" if clear else "0", len(pairs) // 2, *pairs, *removed],
            ),
            "settings_change",
        )
        if reply.status != "ok":
            raise SettingsVersionError(f"guild {guild_id}'s settings are at version {reply.number('version')}")
        return reply.number("version")

    async def history(self, guild_id: int, limit: int) -> list[str]:
        """The latest `limit` log entries, newest first."""
        entries = await self.redis.lrange(self.keys.guild_settings_log(guild_id), 0, max(0, limit - 1))
        return [_text(entry) for entry in entries]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
