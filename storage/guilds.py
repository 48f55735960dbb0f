"""Per-guild settings kept in Redis: the prompt deny-list its moderators manage."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from storage.keys import Keys

MAX_DENYLIST_TERMS = 200
MAX_TERM_LENGTH = 100


class GuildSettings:
    """A guild's prompt deny-list: each term as the moderator wrote it, once per `term_key`.

    `term_key` says when two spellings are the same term (the deny-list's matching form, so "Gore", "ＧＯＲＥ" and
    "gоre" with a Cyrillic о are one term); an empty key means the term has nothing visible in it.
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys, term_key: Callable[[str], str]) -> None:
        self.redis = redis
        self.keys = keys
        self.term_key = term_key

    async def denylist(self, guild_id: int) -> list[str]:
        members = await self.redis.smembers(self.keys.guild_denylist(guild_id))
        return sorted((_text(member) for member in members), key=str.casefold)

    async def add_denied(self, guild_id: int, term: str) -> bool:
        """Add a term; False when it, or another spelling of it, was already there. Raises ValueError past the
        size limits or when the term has nothing visible in it."""
        term = term.strip()
        if not term or len(term) > MAX_TERM_LENGTH:
            raise ValueError(f"a term is 1 to {MAX_TERM_LENGTH} characters")
        wanted = self.term_key(term)
        if not wanted:
            raise ValueError("a term needs at least one visible letter, digit or symbol")  # see jobs.prompt_filter
        key = self.keys.guild_denylist(guild_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            # Check and add in one transaction, so two spellings added at once do not both get in.
            while True:
                try:
                    await pipe.watch(key)
                    members = [_text(member) for member in await pipe.smembers(key)]
                    if any(self.term_key(member) == wanted for member in members):
                        return False
                    if len(members) >= MAX_DENYLIST_TERMS:
                        raise ValueError(f"a deny-list holds at most {MAX_DENYLIST_TERMS} terms")
                    pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
                    pipe.sadd(key, term)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def remove_denied(self, guild_id: int, term: str) -> bool:
        """Remove a term, written any way that has the same key; False when it was not there."""
        key = self.keys.guild_denylist(guild_id)
        wanted = self.term_key(term)
        members = [_text(member) for member in await self.redis.smembers(key)]
        matching = [member for member in members if self.term_key(member) == wanted] if wanted else []
        return bool(matching) and bool(await self.redis.srem(key, *matching))


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)
