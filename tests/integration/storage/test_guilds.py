"""Per-guild deny-lists on a real Redis: one entry per term however it is spelled, even when added at once."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from jobs.prompt_filter import term_key
from storage.guilds import GuildSettings
from storage.keys import Keys

GUILD = 42


async def test_spellings_added_at_once_make_one_entry(redis: aioredis.Redis) -> None:
    """Ten moderators adding spellings of one term at the same moment leave exactly one entry."""
    guilds = GuildSettings(redis, Keys(), term_key)
    spellings = ["Gore", "GORE", "gore", "\uff27\uff2f\uff32\uff25", "g\u043er\u0435", "go\u00adre", "gòre"] * 2
    # Open a connection per moderator first, so the adds really overlap instead of queueing for connections.
    await asyncio.gather(*(redis.ping() for _ in spellings))
    added = await asyncio.gather(*(guilds.add_denied(GUILD, spelling) for spelling in spellings))
    assert sum(added) == 1
    assert len(await guilds.denylist(GUILD)) == 1
