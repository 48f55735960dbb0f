"""GPU time added up in Redis: per member, per server and per model, per UTC day and per UTC month.

What is added for a finished job (`UsageCharge`: RunPod's `executionTime` and `delayTime`, and the money they cost at
the model's price then) travels with the job's `FinalizeBegin`, and `storage/scripts/_gpu_usage.lua` adds it in the
same atomic, fenced step that records the job's outcome, once per job: the job's `usage_counted` flag is set in that
step, so neither two processes finishing one job nor a finish recorded again after a crash adds it twice.

Every sum is a hash of `jobs`, `gpu_ms`, `queue_ms` and `cost:<currency>` (millionths), in total and per model
(`model:<name>:gpu_ms`…), under the keys of `storage/keys.py` (`usage_*`). Day keys live 35 days and month keys 400
days after the last job added to them: nothing grows without bound. Guild 0 holds what was started outside any
server (direct messages, the command line).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from storage.defaults import DAY_S
from storage.keys import Keys

DAY_TTL_S = 35 * DAY_S
MONTH_TTL_S = 400 * DAY_S
# Set on a job's record in the step that adds its usage: a job is added once.
COUNTED_FIELD = "usage_counted"
# What the sums of jobs started outside any server are kept under (as the active-job index does).
NO_GUILD = 0
MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MODEL_SCOPE = "model"
# What unfinished jobs reserved under a budget, in a member's day sums and a server's month sums (create.lua).
RESERVED_FIELD = "reserved_ms"


def day_period(moment: datetime) -> str:
    """The period of the UTC day `moment` falls in: `day:2025-06-01`."""
    return f"day:{_utc(moment):%Y-%m-%d}"


def month_period(moment: datetime) -> str:
    """The period of the UTC month `moment` falls in: `month:2025-06`."""
    return f"month:{_utc(moment):%Y-%m}"


def month_named(text: str) -> str:
    """The period of a month written YYYY-MM; `ValueError` naming the form otherwise."""
    if not MONTH_PATTERN.fullmatch(text):
        raise ValueError(f"{text!r} is not a month written YYYY-MM, like 2025-06")
    return f"month:{text}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not used: give a timezone-aware one")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class UsageCharge:
    """What one finished job adds: its GPU and queue time (ms), and its cost in millionths of `currency` when its
    model has a price. `at` (when it finished) decides its UTC day and month."""

    user_id: int
    guild_id: int | None
    model: str
    gpu_ms: int
    queue_ms: int
    at: datetime
    cost_micros: int | None = None
    currency: str | None = None

    def keys(self, keys: Keys) -> list[str]:
        """The keys the script adds to, for the day and then the month (the order `_gpu_usage.lua` reads)."""
        guild = self.guild_id or NO_GUILD
        found: list[str] = []
        for period in (day_period(self.at), month_period(self.at)):
            found += [
                keys.usage_member(period, self.user_id),
                keys.usage_guild_member(period, guild, self.user_id),
                keys.usage_guild(period, guild),
                keys.usage_guild_members(period, guild),
                keys.usage_totals(period),
                keys.usage_guilds(period),
            ]
        return found

    def argument(self) -> str:
        """The charge as the script reads it: every number as text (a Discord id does not fit Lua's doubles)."""
        charge: dict[str, str] = {
            "user": str(self.user_id),
            "guild": str(self.guild_id or NO_GUILD),
            "model": self.model,
            "gpu_ms": str(max(0, self.gpu_ms)),
            "queue_ms": str(max(0, self.queue_ms)),
            "day_ttl": str(DAY_TTL_S),
            "month_ttl": str(MONTH_TTL_S),
        }
        if self.cost_micros is not None and self.currency:
            charge.update(cost=str(max(0, self.cost_micros)), currency=self.currency)
        return json.dumps(charge, separators=(",", ":"))


@dataclass(frozen=True)
class Sums:
    """Jobs that used a GPU, their GPU and queue milliseconds, and their cost per currency (millionths)."""

    jobs: int = 0
    gpu_ms: int = 0
    queue_ms: int = 0
    costs: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Sums) -> Sums:
        costs = dict(self.costs)
        for currency, micros in other.costs.items():
            costs[currency] = costs.get(currency, 0) + micros
        return Sums(self.jobs + other.jobs, self.gpu_ms + other.gpu_ms, self.queue_ms + other.queue_ms, costs)

    def as_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "gpu_ms": self.gpu_ms, "queue_ms": self.queue_ms, "cost_micros": dict(self.costs)}


@dataclass(frozen=True)
class Breakdown:
    """One sum hash read back: its total and its sums per model."""

    total: Sums = field(default_factory=Sums)
    models: Mapping[str, Sums] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[Any, Any]) -> Breakdown:
        """From HGETALL's reply (fields `gpu_ms`, `cost:USD`, `model:sdxl:gpu_ms`…)."""
        scopes: dict[str, dict[str, Any]] = {}
        for name, value in raw.items():
            parts = _text(name).split(":")
            scope = ""
            if parts[0] == MODEL_SCOPE and len(parts) >= 3:
                scope, parts = parts[1], parts[2:]
            fields = scopes.setdefault(scope, {"costs": {}})
            if parts[0] == "cost" and len(parts) == 2:
                fields["costs"][parts[1]] = int(value)
            elif parts[0] in ("jobs", "gpu_ms", "queue_ms") and len(parts) == 1:
                fields[parts[0]] = int(value)
        sums = {scope: Sums(**fields) for scope, fields in scopes.items()}
        return cls(total=sums.pop("", Sums()), models=dict(sorted(sums.items())))

    def as_dict(self) -> dict[str, Any]:
        return {**self.total.as_dict(), "models": {name: sums.as_dict() for name, sums in self.models.items()}}


@dataclass(frozen=True)
class Ranked:
    """One member or server of a ranking, with its sums."""

    id: int
    usage: Breakdown


@dataclass(frozen=True)
class MemberState:
    """A member's standing against the admission limits right now."""

    active_jobs: int
    cooldown_left_ms: int


class UsageStore:
    """Reads the sums back (the adding is done by the job's finalize, in `storage/scripts/_gpu_usage.lua`)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def read(self, keys: Sequence[str]) -> list[Breakdown]:
        """The sum hashes at `keys`, in one round trip (a key that does not exist reads as nothing used)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            replies = await pipe.execute()
        return [Breakdown.parse(raw) for raw in replies]

    async def member(self, user_id: int, periods: Sequence[str]) -> list[Breakdown]:
        """A member's sums everywhere, one per period."""
        return await self.read([self.keys.usage_member(period, user_id) for period in periods])

    async def member_in_guild(self, guild_id: int, user_id: int, periods: Sequence[str]) -> list[Breakdown]:
        """A member's sums in one server, one per period."""
        return await self.read([self.keys.usage_guild_member(period, guild_id, user_id) for period in periods])

    async def guild(self, guild_id: int, periods: Sequence[str]) -> list[Breakdown]:
        """A server's sums, one per period."""
        return await self.read([self.keys.usage_guild(period, guild_id) for period in periods])

    async def totals(self, periods: Sequence[str]) -> list[Breakdown]:
        """The bot's sums, one per period."""
        return await self.read([self.keys.usage_totals(period) for period in periods])

    async def top_members(self, guild_id: int, period: str, limit: int | None) -> list[Ranked]:
        """A server's members who used the most GPU time in the period, most first (`limit`: at most that many), with
        their sums there."""
        ranked = await self._ranking(self.keys.usage_guild_members(period, guild_id), limit)
        sums = await self.read([self.keys.usage_guild_member(period, guild_id, user) for user in ranked])
        return [Ranked(user, usage) for user, usage in zip(ranked, sums, strict=True)]

    async def guilds(self, period: str, limit: int | None = None) -> list[Ranked]:
        """The servers with usage in the period (guild 0: outside any server), most GPU time first."""
        ranked = await self._ranking(self.keys.usage_guilds(period), limit)
        sums = await self.read([self.keys.usage_guild(period, guild) for guild in ranked])
        return [Ranked(guild, usage) for guild, usage in zip(ranked, sums, strict=True)]

    async def _ranking(self, key: str, limit: int | None) -> list[int]:
        ids = await self.redis.zrevrange(key, 0, -1 if limit is None else limit - 1)
        return [int(_text(value)) for value in ids]

    async def reserved_ms(self, keys: Sequence[str]) -> list[int]:
        """The GPU milliseconds unfinished jobs reserved under a budget in these sums (`reserved_ms`), in one round
        trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, RESERVED_FIELD)
            replies = await pipe.execute()
        return [max(0, int(value or 0)) for value in replies]

    async def member_state(self, user_id: int) -> MemberState:
        """How many unfinished jobs the member has, and how long their cooldown still runs (ms)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.user_active(user_id))
            pipe.pttl(self.keys.user_cooldown(user_id))
            active, cooldown = await pipe.execute()
        return MemberState(active_jobs=int(active), cooldown_left_ms=max(0, int(cooldown)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
