"""Per-guild deny-lists on a real Redis: one entry per term however it is spelled, even when added at once."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from cogs.i18n import render
from jobs.prompt_filter import term_key
from storage.guilds import MAX_DENYLIST_TERMS, MAX_TERM_LENGTH, GuildSettings
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


async def test_the_deny_lists_limits_are_worded_as_the_front_end_translates_them(redis: aioredis.Redis) -> None:
    """A term too long, one of nothing visible and one past a full list are refused in words a German member reads
    in German (the templates of `jobs.prompt_filter`)."""
    guilds = GuildSettings(redis, Keys(), term_key)
    refusals = []
    for term, wording in (("x" * (MAX_TERM_LENGTH + 1), "characters"), ("\u200b", "visible")):
        with pytest.raises(ValueError, match=wording) as refused:
            await guilds.add_denied(GUILD, term)
        refusals.append(render(str(refused.value), "de"))
    for index in range(MAX_DENYLIST_TERMS):
        await guilds.add_denied(GUILD, f"term{index}")
    with pytest.raises(ValueError, match="at most") as refused:
        await guilds.add_denied(GUILD, "one more")
    refusals.append(render(str(refused.value), "de"))
    assert refusals == [
        "ein Begriff hat 1 bis 100 Zeichen",
        "ein Begriff braucht mindestens einen sichtbaren Buchstaben, eine Ziffer oder ein Symbol",
        "eine Sperrliste enthält höchstens 200 Begriffe",
    ]
