"""GPU time used: what a finished job adds to the sums, and what each front end may read of them.

A job adds what RunPod reports for it when it ends (`charge_of`): its `executionTime` (the GPU time RunPod bills) and
its `delayTime` (time in the queue), whatever the outcome: completed, failed, timed out, or cancelled after a worker
started it. A job RunPod reports no `executionTime` for used no GPU (cancelled while queued) and adds nothing; nor
does a job whose end RunPod never reported (its result expired, its outcome unknown, given up without an answer):
what such a job cost is on RunPod's bill, not in these sums. The sums are per UTC day and month.

Money is the GPU time at the model's price when the job ended (`jobs/prices.py`), recorded with it, as RunPod bills
it: a price changed later applies to the jobs that end after the change, and does not rewrite what earlier jobs
cost (a model priced later shows no money for its earlier jobs).

Who sees what (`UsageService`), the same rule as for jobs: a member sees their own sums; a server's moderators see
that server's (its totals, per model, its top members) and no other server's; the operator sees every server's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jobs.access import Actor
from jobs.presets import InvalidRequestError, ModelCatalog
from jobs.prices import Price
from jobs.text import N_, stored
from storage.models import TrackedJob
from storage.store import Limits
from storage.usage import (
    NO_GUILD,
    Breakdown,
    MemberState,
    Ranked,
    Sums,
    UsageCharge,
    UsageStore,
    day_period,
    month_named,
    month_period,
)

# The templates of this module's texts for members (`jobs.text.stored`), registered when the module is
# imported, so any process recognises them in a kept text and translates them.
MIN = stored("{minutes} min")
HOURS = stored("{hours} h")
DAYS = stored("{days} d")
DAYS_HOURS = stored("{days} d {hours} h")
H_MIN = stored("{hours} h {minutes} min")
HAS_OF_LEFT_AND_THIS = stored(
    "{whose} has {left} of {budget} left, and this job needs about {seconds_words} (the model's recent run "
    "time for its images); {resets}. Fewer images take less."
)
IT_RESETS_AT_UTC_IN = stored("it resets at 00:00 UTC (in {wait_words})")
IT_RESETS_ON_AT_UTC = stored("it resets on {ends:%-d %B} at 00:00 UTC (in {wait_words})")
IS_USED_UP_OF_LEFT = stored("{whose} is used up: 0 of {budget} left; {resets}.")
RESETS_AT_UTC_IN = stored("resets at 00:00 UTC (in {wait_words})")
RESETS_ON_AT_UTC_IN = stored("resets on {month_ends:%-d %B} at 00:00 UTC (in {wait_words})")
OF_USED_LEFT = stored("{what}: {seconds_words} of {seconds_words2} used{held}, {seconds_words3} left; {resets}.")
RESERVED_BY_JOBS_IN_PROGRESS = stored(", {seconds_words} reserved by jobs in progress")

# The sums as the front ends read them (they never reach the store themselves).
__all__ = ["Breakdown", "Sums"]

# How many members a server's view ranks.
TOP_MEMBERS = 10
# What the metrics call a model that models.toml no longer lists, so their labels stay bounded.
OTHER_MODEL = "other"


class UsageRefusedError(Exception):
    """The actor may not see these sums: the message says why and who may."""


def server_refusal(actor: Actor) -> str | None:
    """Why the actor may not see the usage of the server they ask from; None when they may (its moderators and the
    operator, in that server)."""
    if actor.guild_id is None:
        return N_("A server's usage is shown in that server: use this command there. (/usage me works anywhere.)")
    if not (actor.moderator or actor.operator):
        return N_(
            "Only this server's moderators can see its usage (the **Manage Server** permission or the moderator "
            "role). /usage me shows your own."
        )
    return None


def everything_refusal(actor: Actor) -> str | None:
    """Why the actor may not see every server's usage; None for the operator."""
    if actor.operator:
        return None
    return N_(
        "Only the bot's operator can see every server's usage. /usage me shows your own, and /usage server shows a "
        "server's to its moderators."
    )


def period_ends(moment: datetime) -> tuple[datetime, datetime]:
    """When the UTC day and the UTC month `moment` falls in end (and their budgets start again)."""
    utc = moment.astimezone(UTC)
    day_ends = datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + timedelta(days=1)
    month_ends = datetime(utc.year + utc.month // 12, utc.month % 12 + 1, 1, tzinfo=UTC)
    return day_ends, month_ends


def wait_words(seconds: float) -> str:
    """A wait as a member reads it: `3 h 12 min`, `25 d 3 h`, `4 min`, `under a minute`."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return N_("under a minute")
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return DAYS_HOURS.format(days=days, hours=hours) if hours else DAYS.format(days=days)
    if hours:
        return H_MIN.format(hours=hours, minutes=minutes) if minutes else HOURS.format(hours=hours)
    return MIN.format(minutes=minutes)


def seconds_words(ms: int) -> str:
    """GPU milliseconds as whole seconds: `300 s`."""
    return f"{ms // 1000} s"


def budget_refusal(scope: str, budget_ms: int, left_ms: int, estimate_ms: int, now: datetime) -> str:
    """What a member reads when a job does not fit in a GPU-time budget (`scope`: "member", their day; "guild", the
    server's month): how much is left, what the job needs when some is, and when the budget resets."""
    day_ends, month_ends = period_ends(now)
    if scope == "member":
        whose, ends = N_("Your GPU budget today"), day_ends
        resets = IT_RESETS_AT_UTC_IN.format(wait_words=wait_words((ends - now).total_seconds()))
    else:
        whose, ends = N_("This server's GPU budget this month"), month_ends
        resets = IT_RESETS_ON_AT_UTC.format(ends=ends, wait_words=wait_words((ends - now).total_seconds()))
    left, budget = seconds_words(left_ms), seconds_words(budget_ms)
    if left_ms < 1000:
        return IS_USED_UP_OF_LEFT.format(whose=whose, budget=budget, resets=resets)
    return HAS_OF_LEFT_AND_THIS.format(
        whose=whose, left=left, budget=budget, seconds_words=seconds_words(estimate_ms), resets=resets
    )


def charge_of(
    job: TrackedJob,
    execution_ms: int | None,
    delay_ms: int | None,
    catalog: ModelCatalog | None,
    at: datetime,
) -> UsageCharge | None:
    """What a job RunPod reported ended adds to the sums (`at`: when it ended); None when it used no GPU."""
    if execution_ms is None:
        return None
    price = price_of(job.model, catalog)
    return UsageCharge(
        user_id=job.user_id,
        guild_id=job.guild_id,
        model=job.model,
        gpu_ms=execution_ms,
        queue_ms=delay_ms or 0,
        at=at,
        cost_micros=price.cost_micros(execution_ms) if price is not None else None,
        currency=price.currency if price is not None else None,
    )


def price_of(model: str, catalog: ModelCatalog | None) -> Price | None:
    """The model's price now; None without one (or for a model models.toml no longer lists)."""
    if catalog is None:
        return None
    try:
        return catalog.get(model).price
    except InvalidRequestError:
        return None


def metric_model(model: str, catalog: ModelCatalog | None) -> str:
    """The model as a metric label: a name from models.toml, or `other`, so a label's values stay bounded."""
    return model if catalog is not None and model in catalog.names else OTHER_MODEL


@dataclass(frozen=True)
class Span:
    """Sums of today and of this month (UTC)."""

    today: Breakdown
    month: Breakdown


@dataclass(frozen=True)
class Periods:
    """The UTC day and month a view is about, and when the day's sums start again."""

    day: str
    month: str
    day_ends: datetime

    @classmethod
    def at(cls, moment: datetime) -> Periods:
        utc = moment.astimezone(UTC)
        midnight = datetime(utc.year, utc.month, utc.day, tzinfo=UTC) + timedelta(days=1)
        return cls(day_period(utc), month_period(utc), midnight)

    @property
    def both(self) -> list[str]:
        return [self.day, self.month]

    @property
    def month_name(self) -> str:
        """`2025-06`."""
        return self.month.removeprefix("month:")


@dataclass(frozen=True)
class MemberUsage:
    """What a member sees of themselves: their sums everywhere and in the server they ask from, and the limits that
    apply to them now."""

    user_id: int
    periods: Periods
    everywhere: Span
    # In the server asked from; None in a DM.
    here: Span | None
    limits: Limits
    state: MemberState
    # The budgets that apply here and what is left of each, in words (none: no budget is set).
    budgets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerUsage:
    """What a server's moderators see: its sums and its top members this month."""

    guild_id: int
    periods: Periods
    span: Span
    top: Sequence[Ranked] = field(default_factory=list)


@dataclass(frozen=True)
class BotUsage:
    """What the operator sees for a month: the bot's sums and every server's (guild 0: outside any server)."""

    month: str
    total: Breakdown
    servers: Sequence[Ranked]


@dataclass(frozen=True)
class ServerMonth:
    """What the operator sees of one server for a month: its sums and its members'."""

    month: str
    guild_id: int
    total: Breakdown
    members: Sequence[Ranked]


async def _no_limits(_guild_id: int | None) -> Limits:
    """For a reader that shows no member's limits (the command line)."""
    return Limits()


class UsageService:
    """What the front ends read of the sums, for whom (the adding is done where a job's outcome is recorded)."""

    def __init__(
        self,
        store: UsageStore,
        limits_in: Callable[[int | None], Awaitable[Limits]] | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        # The limits a member's next job in a server obeys (its settings under the operator's; the operator's alone
        # outside a server), read when asked, as admission reads them.
        self.limits_in = limits_in or _no_limits
        self._now = now

    async def member(self, actor: Actor) -> MemberUsage:
        """The actor's own sums today and this month, everywhere and in the server they ask from."""
        periods = Periods.at(self._now())
        today, month = await self.store.member(actor.user_id, periods.both)
        here = None
        if actor.guild_id is not None:
            here_today, here_month = await self.store.member_in_guild(actor.guild_id, actor.user_id, periods.both)
            here = Span(here_today, here_month)
        state = await self.store.member_state(actor.user_id)
        limits = await self.limits_in(actor.guild_id)
        budgets = await self._budgets(actor, periods, today, limits)
        return MemberUsage(actor.user_id, periods, Span(today, month), here, limits, state, budgets)

    async def _budgets(self, actor: Actor, periods: Periods, today: Breakdown, limits: Limits) -> tuple[str, ...]:
        """The member's daily budget and the server's monthly one, as they apply where the member asks: used,
        reserved by jobs still running, left, and when each resets."""
        lines: list[str] = []
        now = self._now()
        day_ends, month_ends = period_ends(now)
        if limits.member_daily_gpu_ms:
            (reserved,) = await self.store.reserved_ms([self.store.keys.usage_member(periods.day, actor.user_id)])
            lines.append(
                _budget_line(
                    N_("Your GPU time today"),
                    limits.member_daily_gpu_ms,
                    today.total.gpu_ms,
                    reserved,
                    RESETS_AT_UTC_IN.format(wait_words=wait_words((day_ends - now).total_seconds())),
                )
            )
        if limits.guild_monthly_gpu_ms and actor.guild_id is not None:
            (month,) = await self.store.guild(actor.guild_id, [periods.month])
            (reserved,) = await self.store.reserved_ms([self.store.keys.usage_guild(periods.month, actor.guild_id)])
            lines.append(
                _budget_line(
                    N_("This server's GPU time this month"),
                    limits.guild_monthly_gpu_ms,
                    month.total.gpu_ms,
                    reserved,
                    RESETS_ON_AT_UTC_IN.format(
                        month_ends=month_ends, wait_words=wait_words((month_ends - now).total_seconds())
                    ),
                )
            )
        return tuple(lines)

    async def server(self, actor: Actor, top: int = TOP_MEMBERS) -> ServerUsage:
        """The sums of the server the actor asks from: for its moderators and the operator only."""
        refused = server_refusal(actor)
        if refused is not None or actor.guild_id is None:
            raise UsageRefusedError(refused)
        periods = Periods.at(self._now())
        today, month = await self.store.guild(actor.guild_id, periods.both)
        ranked = await self.store.top_members(actor.guild_id, periods.month, top)
        return ServerUsage(actor.guild_id, periods, Span(today, month), ranked)

    async def everything(self, actor: Actor, month: str | None = None, limit: int | None = None) -> BotUsage:
        """Every server's sums for a month (YYYY-MM; default this one): for the operator only. `ValueError` for a
        month not written YYYY-MM."""
        refused = everything_refusal(actor)
        if refused is not None:
            raise UsageRefusedError(refused)
        period = month_named(month) if month is not None else Periods.at(self._now()).month
        (total,) = await self.store.totals([period])
        servers = await self.store.guilds(period, limit)
        return BotUsage(period.removeprefix("month:"), total, servers)

    async def server_month(
        self, actor: Actor, guild_id: int, month: str | None = None, top: int | None = None
    ) -> ServerMonth:
        """One server's sums for a month (YYYY-MM; default this one) and its members, most GPU time first (`top`:
        at most that many): for the operator only, from anywhere. `ValueError` for a month not written YYYY-MM."""
        refused = everything_refusal(actor)
        if refused is not None:
            raise UsageRefusedError(refused)
        period = month_named(month) if month is not None else Periods.at(self._now()).month
        (total,) = await self.store.guild(guild_id, [period])
        members = await self.store.top_members(guild_id, period, top)
        return ServerMonth(period.removeprefix("month:"), guild_id, total, members)


def _budget_line(what: str, budget_ms: int, used_ms: int, reserved_ms: int, resets: str) -> str:
    """`Your GPU time today: 42 s of 300 s used, 30 s reserved by jobs in progress, 228 s left; resets …`."""
    left = max(0, budget_ms - used_ms - reserved_ms)
    held = RESERVED_BY_JOBS_IN_PROGRESS.format(seconds_words=seconds_words(reserved_ms)) if reserved_ms >= 1000 else ""
    return OF_USED_LEFT.format(
        what=what,
        seconds_words=seconds_words(used_ms),
        seconds_words2=seconds_words(budget_ms),
        held=held,
        seconds_words3=seconds_words(left),
        resets=resets,
    )


def is_outside_servers(guild_id: int) -> bool:
    """Whether a ranked server is the sums of what was started outside any server."""
    return guild_id == NO_GUILD
