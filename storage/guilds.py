"""Per-guild settings kept in Redis: the prompt deny-list its moderators manage."""

from __future__ import annotations

import redis.asyncio as aioredis

from storage.keys import Keys

MAX_DENYLIST_TERMS = 200
MAX_TERM_LENGTH = 100


class GuildSettings:
    """A guild's prompt deny-list (terms stored lower-case)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def denylist(self, guild_id: int) -> list[str]:
        members = await self.redis.smembers(self.keys.guild_denylist(guild_id))
        return sorted(member.decode() if isinstance(member, bytes) else str(member) for member in members)

    async def add_denied(self, guild_id: int, term: str) -> bool:
        """Add a term; False when it was already there. Raises ValueError past the size limits."""
        term = term.strip().lower()
        if not term or len(term) > MAX_TERM_LENGTH:
            raise ValueError(f"a term is 1 to {MAX_TERM_LENGTH} characters")
        key = self.keys.guild_denylist(guild_id)
        if await self.redis.scard(key) >= MAX_DENYLIST_TERMS:
            raise ValueError(f"a deny-list holds at most {MAX_DENYLIST_TERMS} terms")
        return bool(await self.redis.sadd(key, term))

    async def remove_denied(self, guild_id: int, term: str) -> bool:
        """Remove a term; False when it was not there."""
        return bool(await self.redis.srem(self.keys.guild_denylist(guild_id), term.strip().lower()))
