"""`JobStore`: job records in Redis, changed only by atomic Lua transitions (one round trip each).

Guarantees, stated loudly because the rest of the bot relies on them:
- A request id creates at most one job (`create` is idempotent per request id while the key lives, 1 day).
- A due job is claimed by one process at a time: claiming moves its score forward by a lease, and the new score is
  the fencing token. A process whose lease ran out (it crashed or stalled) cannot reschedule or finalize the job any
  more; the job simply becomes claimable again when the lease expires. No sweeper is needed.
- A finished job is delivered at least once: `finalize_begin` records the outcome and keeps the job scheduled under
  a delivery lease; only `finalize_commit` unschedules it. A crash between the two means one more delivery attempt,
  never zero. Delivery code must therefore be idempotent (it is told what it already posted).
- `finalize_commit` is idempotent and removes the job from every index in the same call.
- A finished job's GPU time (`FinalizeBegin.usage`) is added to the usage sums in the step that records its outcome,
  under its lease, and at most once per job (`storage/usage.py`).
- Every record that stops changing expires: delivered jobs after `record_ttl_s`, idempotency keys, cooldowns,
  RunPod-id lookups, the budget buckets and the execution-time samples all carry a TTL. Live jobs never expire.
- The shared `/status` budget is a token bucket per endpoint: in any sliding window of T seconds, all processes
  together claim at most `budget_per_second * (T + burst_ms / 1000)` jobs that will call `/status`.
- A webhook may take over a live job's lease (`take_for_webhook`): from then on the previous holder's reschedule and
  finalize are refused, so the job is still finished by one process only. A job already finishing is never taken.
- A member's press of a button is held by one press at a time (`claim_press`, SET NX with an expiry), in every
  process alike; only the press holding it records its job or ends it.
- `apply` runs many transitions (reschedules, finalize begins and commits, releases) atomically in one round trip,
  each fenced on its own job: a busy poll cycle costs a constant number of round trips, whatever its size.
All times are the Redis server's clock, so processes on machines with skewed clocks agree on what is due.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from storage.defaults import (
    DAY_S,
    DEFAULT_GPU_ESTIMATE_MS,
    DEFAULT_PREFIX,
    DEFAULT_RECORD_TTL_S,
    DEFAULT_SUBMIT_LEASE_MS,
)
from storage.keys import Keys
from storage.models import JobState, Press, TrackedJob, encode_field, encode_fields
from storage.usage import DAY_TTL_S, MONTH_TTL_S, UsageCharge, day_period, month_period

DEFAULT_IDEMPOTENCY_TTL_S = DAY_S
DEFAULT_HISTORY_MAX = 50
DEFAULT_HISTORY_TTL_S = 30 * DAY_S
# RunPod forgets a job at its policy.ttl (the bot's default is about 75 minutes; at most 7 days). A webhook for a job
# older than this is not matched: its safety-net poll finds the result instead.
DEFAULT_RUNPOD_INDEX_TTL_S = 2 * DAY_S
ENDPOINT_ERROR_TTL_S = DAY_S
# How many recent execution times are kept per endpoint, and for how long after the last one.
DEFAULT_EXECUTION_SAMPLES = 200
EXECUTION_SAMPLES_TTL_S = 7 * DAY_S
# The budget bucket holds a quarter second of budget unless the caller asks for another burst (see jobs/poller.py).
DEFAULT_BURST_MS = 250
ENDPOINT_ERROR_MAX_CHARS = 500
NO_GUILD = 0


class StoreError(Exception):
    """Base of the store's refusals."""


class QuotaExceededError(StoreError):
    """The user (everywhere), the member (in this guild, under its own limit) or the guild already has as many active
    jobs as allowed: `scope` is "user", "member" or "guild"."""

    def __init__(self, scope: str, active: int, limit: int) -> None:
        super().__init__(f"{scope} already has {active} active jobs (limit {limit})")
        self.scope = scope
        self.active = active
        self.limit = limit


class BudgetExceededError(StoreError):
    """The job's GPU-time estimate does not fit in what is left of a budget: `scope` is "member" (the member's day)
    or "guild" (the server's month). Milliseconds: the budget, what is left of it (used and reserved taken off), and
    the estimate that did not fit."""

    def __init__(self, scope: str, budget_ms: int, left_ms: int, estimate_ms: int) -> None:
        super().__init__(f"{scope} budget: {left_ms} of {budget_ms} ms left, the job needs about {estimate_ms} ms")
        self.scope = scope
        self.budget_ms = budget_ms
        self.left_ms = left_ms
        self.estimate_ms = estimate_ms


class CooldownError(StoreError):
    """The user submitted too recently."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"cooldown: retry in {retry_after_ms / 1000:.1f} s")
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True)
class StoreConfig:
    """The store's numbers; every one has a default."""

    prefix: str = DEFAULT_PREFIX
    record_ttl_s: int = DEFAULT_RECORD_TTL_S
    idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S
    history_max: int = DEFAULT_HISTORY_MAX
    history_ttl_s: int = DEFAULT_HISTORY_TTL_S
    submit_lease_ms: int = DEFAULT_SUBMIT_LEASE_MS
    runpod_index_ttl_s: int = DEFAULT_RUNPOD_INDEX_TTL_S
    execution_samples: int = DEFAULT_EXECUTION_SAMPLES
    # A job's GPU-time estimate per image when its model has no recent run times (budgets only).
    gpu_estimate_ms: int = DEFAULT_GPU_ESTIMATE_MS


@dataclass(frozen=True)
class Limits:
    """Per-request admission limits; 0 disables one.

    `user_active` and `cooldown_ms` count a member's jobs everywhere (the operator's); `member_active` and
    `member_cooldown_ms` only those in the job's guild (a guild's own, stricter ones: `jobs.server_settings`).
    """

    user_active: int = 0
    guild_active: int = 0
    cooldown_ms: int = 0
    member_active: int = 0
    member_cooldown_ms: int = 0
    # GPU-time budgets (ms; 0: none), the strictest that applies: a member's per UTC day (their GPU time everywhere
    # that day) and the job's server's per UTC month.
    member_daily_gpu_ms: int = 0
    guild_monthly_gpu_ms: int = 0

    @property
    def budgeted(self) -> bool:
        """Whether a budget applies, so admission reserves the job's estimate."""
        return self.member_daily_gpu_ms > 0 or self.guild_monthly_gpu_ms > 0


@dataclass(frozen=True)
class NewJob:
    """What `create` needs to know about a job."""

    jid: str
    endpoint_id: str
    model: str
    user_id: int
    guild_id: int | None = None
    channel_id: int | None = None
    request_id: str | None = None
    request: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] | None = None
    ttl_ms: int | None = None
    max_queue_wait_ms: int | None = None
    # How many images the job makes: its GPU-time estimate is the model's recent run time times this.
    images: int = 1
    # When it is submitted (the process's clock): the UTC day and month its budget reservation is made in.
    at: datetime | None = None


@dataclass(frozen=True)
class Created:
    """A new record; `token` is the submitter's lease on it."""

    jid: str
    token: int
    duplicate: bool = False


@dataclass(frozen=True)
class PressHold:
    """A claim on a press (`JobStore.claim_press`): `token` when this press now holds it, None when another press
    does; `jid` the job the holding press recorded (None: none yet, or this press holds it)."""

    token: str | None
    jid: str | None = None


@dataclass(frozen=True)
class Claimed:
    """A job claimed by this process until its lease (`token`, ms on the server's clock) runs out.

    `queue_rank` is the job's place among its endpoint's queued jobs (0: the oldest, next to start), when claimed
    while queued.
    """

    job: TrackedJob
    token: int
    queue_rank: int | None = None


@dataclass(frozen=True)
class ClaimBatch:
    """The result of one claim: the jobs, the server time, and the state of the endpoint's budget and schedule.

    `budget_wait_ms` is how long until the budget allows a worthwhile batch again (0: now); `next_due_ms` how long
    until the next scheduled job is due (None: nothing is scheduled).
    """

    jobs: list[Claimed]
    now_ms: int
    budget_left: int
    budget_wait_ms: int = 0
    next_due_ms: int | None = None


@dataclass(frozen=True)
class EndpointError:
    """The last error RunPod gave for an endpoint."""

    message: str
    at: datetime


@dataclass(frozen=True)
class CancelRequest:
    """The result of asking to cancel: the state the job was in, and whether this was the first request."""

    state: JobState | None
    first: bool
    requested_by: int | None


# --- replies ------------------------------------------------------------------------------------------------


class StoreReplyError(StoreError):
    """A script's reply lacks a field the store reads: the scripts and this module disagree (a bug, never data)."""


class Reply:
    """A script's reply decoded by name: the scripts return flat name/value lists (`{'status', 'ok', 'token', 17}`).

    A missing field raises `StoreReplyError` naming it, rather than reading the wrong place of a list.
    """

    def __init__(self, raw: Any, what: str) -> None:
        if not isinstance(raw, list) or len(raw) % 2:
            raise StoreReplyError(f"{what}: expected name/value pairs, got {raw!r}")
        self._what = what
        self._fields: dict[str, Any] = {_text(name): value for name, value in zip(raw[::2], raw[1::2], strict=True)}

    def __getitem__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise StoreReplyError(f"{self._what}: the reply has no {name!r} (it has {sorted(self._fields)})") from None

    def text(self, name: str) -> str:
        return _text(self[name])

    def number(self, name: str) -> int:
        return int(self[name])

    def job(self, name: str = "record") -> TrackedJob:
        return TrackedJob.from_hash(_record(self[name]))

    @property
    def status(self) -> str:
        return self.text("status")


# --- batchable transitions (see `JobStore.apply`) ---------------------------------------------------------------

R = TypeVar("R", covariant=True)


class StoreOp(Generic[R]):
    """One transition `JobStore.apply` can batch: how it is sent to `_ops.lua`, and what its reply means (`R`)."""

    def encode(self, keys: Keys, config: StoreConfig) -> tuple[str, list[str], list[Any]]:
        """The op's name in `_ops.lua`, its keys and its arguments."""
        raise NotImplementedError

    def decode(self, reply: Reply) -> R:
        raise NotImplementedError


@dataclass(frozen=True)
class Rescheduled(Claimed):
    """A reschedule went through: the job is held under this new lease (`token`) until its next action."""


@dataclass(frozen=True)
class Finalizing(Claimed):
    """An outcome is recorded: the job is held under this delivery lease, with the record as it is now. `counted`:
    this step added the job's usage (its `FinalizeBegin` carried a charge, and no step had added it before)."""

    counted: bool = False


class Commit(StrEnum):
    """What marking a job delivered found."""

    DONE = "ok"  # marked delivered now
    ALREADY = "already"  # it was delivered before (a repeated commit)
    LOST = "lost"  # another process holds the job now


@dataclass(frozen=True)
class Committed:
    """The result of `FinalizeCommit`: true unless another process holds the job now."""

    status: Commit

    def __bool__(self) -> bool:
        return self.status is not Commit.LOST


@dataclass(frozen=True)
class Released:
    """The result of `Release`: true when the job was still held under the lease and is due now."""

    released: bool

    def __bool__(self) -> bool:
        return self.released


@dataclass(frozen=True)
class Reschedule(StoreOp[Rescheduled | None]):
    """Store what a poll learned and schedule the next action in `delay_ms`. Result: the new lease, or None when
    the lease was lost."""

    claimed: Claimed
    delay_ms: int
    state: JobState | None = None
    fields: Mapping[str, Any] | None = None
    polled: bool = True

    def encode(self, keys: Keys, config: StoreConfig) -> tuple[str, list[str], list[Any]]:
        job = self.claimed.job
        return (
            "reschedule",
            [keys.job(job.jid), keys.due(job.endpoint_id), keys.stats(), keys.queued(job.endpoint_id)],
            [
                job.jid,
                self.claimed.token,
                max(0, self.delay_ms),
                self.state.value if self.state else "",
                "1" if self.polled else "0",
                *_pairs(self.fields or {}),
            ],
        )

    def decode(self, reply: Reply) -> Rescheduled | None:
        if reply.status != "ok":
            return None
        return Rescheduled(job=self.claimed.job, token=reply.number("token"))


@dataclass(frozen=True)
class FinalizeBegin(StoreOp[Finalizing | None]):
    """Record the outcome and take a delivery lease. Result: the delivery lease with the updated record, or None
    when the lease was lost or the job is already delivered.

    `execution_ms` of a completed job joins the endpoint's execution-time samples. `usage` (a job that used a GPU) is
    added to the usage sums in the same step, once per job whatever calls this again (`storage/usage.py`).
    """

    claimed: Claimed
    outcome: JobState
    lease_ms: int
    fields: Mapping[str, Any] | None = None
    execution_ms: int | None = None
    usage: UsageCharge | None = None
    # Keep the job's budget reservation charged instead of giving it back: its end was never reported by RunPod,
    # so it may have run (and been billed) without the bot learning its GPU time.
    keep_reservation: bool = False

    def encode(self, keys: Keys, config: StoreConfig) -> tuple[str, list[str], list[Any]]:
        if not self.outcome.is_outcome:
            raise ValueError(f"{self.outcome} is not a final outcome")
        job = self.claimed.job
        sample = self.execution_ms if self.outcome is JobState.COMPLETED and self.execution_ms else None
        usage = self.usage
        return (
            "finalize_begin",
            [
                *_final_keys(keys, job),
                keys.execution_samples(job.endpoint_id),
                *_reservation_keys(keys, job),
                *(usage.keys(keys) if usage is not None else []),
            ],
            [
                job.jid,
                self.claimed.token,
                self.outcome.value,
                self.lease_ms,
                "" if sample is None else int(sample),
                config.execution_samples,
                EXECUTION_SAMPLES_TTL_S,
                "" if usage is None else usage.argument(),
                "1" if self.keep_reservation else "0",
                *_pairs(self.fields or {}),
            ],
        )

    def decode(self, reply: Reply) -> Finalizing | None:
        if reply.status != "ok":
            return None
        return Finalizing(job=reply.job(), token=reply.number("token"), counted=reply.number("counted") == 1)


@dataclass(frozen=True)
class FinalizeCommit(StoreOp[Committed]):
    """Mark the job delivered (idempotent). Result: `Committed`, false only when another process holds the job."""

    claimed: Claimed
    fields: Mapping[str, Any] | None = None

    def encode(self, keys: Keys, config: StoreConfig) -> tuple[str, list[str], list[Any]]:
        job = self.claimed.job
        return (
            "finalize_commit",
            _final_keys(keys, job),
            [job.jid, self.claimed.token, config.record_ttl_s, *_pairs(self.fields or {})],
        )

    def decode(self, reply: Reply) -> Committed:
        return Committed(Commit(reply.status))


@dataclass(frozen=True)
class Release(StoreOp[Released]):
    """Make a held job due now for another process. Result: whether it was still held."""

    claimed: Claimed

    def encode(self, keys: Keys, config: StoreConfig) -> tuple[str, list[str], list[Any]]:
        job = self.claimed.job
        return "release", [keys.due(job.endpoint_id)], [job.jid, self.claimed.token]

    def decode(self, reply: Reply) -> Released:
        return Released(reply.status == "released")


@dataclass(frozen=True)
class RecordError(StoreOp[None]):
    """Remember RunPod's latest error for the endpoint (kept a day). Result: None."""

    endpoint_id: str
    message: str

    def encode(self, keys: Keys, config: StoreConfig) -> tuple[str, list[str], list[Any]]:
        return (
            "record_error",
            [keys.endpoint_error(self.endpoint_id)],
            [self.message[:ENDPOINT_ERROR_MAX_CHARS], ENDPOINT_ERROR_TTL_S],
        )

    def decode(self, reply: Reply) -> None:
        reply.text("status")


@dataclass(frozen=True)
class WebhookTake:
    """What taking a job for its webhook found: `claimed` when this process now holds it, else why not."""

    status: str
    claimed: Claimed | None = None
    state: JobState | None = None


def _load_scripts() -> dict[str, str]:
    folder = resources.files("storage") / "scripts"
    # Files starting with `_` hold shared functions: every script gets them, in name order.
    shared = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".lua") and entry.name.startswith("_")),
        key=lambda entry: entry.name,
    )
    prelude = "\n".join(entry.read_text() for entry in shared)
    return {
        entry.name.removesuffix(".lua"): prelude + "\n" + entry.read_text()
        for entry in folder.iterdir()
        if entry.name.endswith(".lua") and not entry.name.startswith("_")
    }


SCRIPT_SOURCES = _load_scripts()


def _pairs(fields: Mapping[str, Any]) -> list[str]:
    flat: list[str] = []
    for name, value in encode_fields(dict(fields)).items():
        flat += [name, value]
    return flat


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _record(raw: Sequence[Any]) -> dict[str, str]:
    return {_text(name): _text(value) for name, value in zip(raw[::2], raw[1::2], strict=True)}


def _claimed(entry: Reply) -> Claimed:
    """A claimed job of `claim.lua`'s reply (`queue_rank` -1: not queued)."""
    rank = entry.number("queue_rank")
    return Claimed(job=entry.job(), token=entry.number("token"), queue_rank=rank if rank >= 0 else None)


def _reservation_keys(keys: Keys, job: TrackedJob) -> list[str]:
    """The sums a job's budget reservation was made in (the member's day, the server's month); the job's own key
    stands for none (a job in a DM reserves nothing in a server's month)."""
    none = keys.job(job.jid)
    day = keys.usage_member(job.reserved_day, job.user_id) if job.reserved_day else none
    month = keys.usage_guild(job.reserved_month, job.guild_id) if job.reserved_month and job.guild_id else none
    return [day, month]


def _final_keys(keys: Keys, job: TrackedJob) -> list[str]:
    return [
        keys.job(job.jid),
        keys.due(job.endpoint_id),
        keys.user_active(job.user_id),
        keys.guild_active(job.guild_id or NO_GUILD),
        keys.stats(),
        keys.queued(job.endpoint_id),
    ]


class JobStore:
    """Job records, the due-time schedule per endpoint, and the per-user and per-guild indexes."""

    def __init__(self, redis: aioredis.Redis, config: StoreConfig | None = None) -> None:
        self.redis = redis
        self.config = config or StoreConfig()
        self.keys = Keys(self.config.prefix)
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(source) for name, source in SCRIPT_SOURCES.items()
        }
        # Round trips to Redis made through this store (each script call, command or pipeline counts one).
        self.round_trips = 0

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        self.round_trips += 1
        return await self._scripts[name](keys=list(keys), args=list(args))

    # --- transitions -------------------------------------------------------------------------------------------

    async def create(self, new: NewJob, limits: Limits | None = None, *, submit_lease_ms: int | None = None) -> Created:
        """Create the record in SUBMITTING under a submit lease; a repeated request id returns the first job.

        `submit_lease_ms` replaces the configured lease for a submit that takes longer (a /runsync holds its reply).
        """
        keys = self.keys
        limits = limits or Limits()
        guild_id = new.guild_id or NO_GUILD
        fields = {
            "model": new.model,
            "user_id": new.user_id,
            "guild_id": new.guild_id,
            "channel_id": new.channel_id,
            "request_id": new.request_id,
            "request": dict(new.request or {}),
            "extra": dict(new.extra or {}),
            "ttl_ms": new.ttl_ms,
            "max_queue_wait_ms": new.max_queue_wait_ms,
        }
        # Under a budget the job reserves its estimate in the member's day and the server's month (storage/usage.py's
        # sums, field `reserved_ms`), which its end gives back (`FinalizeBegin`): the record names those periods.
        at = new.at or datetime.now(UTC)
        day, month = day_period(at), month_period(at)
        if limits.budgeted:
            fields.update(reserved_day=day, reserved_month=month)
        reply = await self._run(
            "create",
            [
                keys.job(new.jid),
                keys.due(new.endpoint_id),
                keys.user_active(new.user_id),
                keys.guild_active(guild_id),
                keys.user_jobs(new.user_id),
                keys.idempotency(new.request_id or ""),
                keys.user_cooldown(new.user_id),
                keys.stats(),
                keys.endpoints(),
                keys.guild_member_cooldown(guild_id, new.user_id),
                keys.usage_member(day, new.user_id),
                keys.usage_guild(month, guild_id),
                keys.execution_samples(new.endpoint_id),
            ],
            [
                new.jid,
                new.endpoint_id,
                limits.user_active,
                limits.guild_active,
                limits.cooldown_ms,
                submit_lease_ms if submit_lease_ms is not None else self.config.submit_lease_ms,
                self.config.idempotency_ttl_s,
                self.config.history_max,
                self.config.history_ttl_s,
                "1" if new.request_id else "0",
                "1" if new.guild_id else "0",
                limits.member_active,
                limits.member_cooldown_ms,
                "1" if limits.budgeted else "0",
                limits.member_daily_gpu_ms,
                limits.guild_monthly_gpu_ms,
                max(1, new.images),
                self.config.gpu_estimate_ms,
                DAY_TTL_S,
                MONTH_TTL_S,
                *_pairs(fields),
            ],
        )
        created = Reply(reply, "create")
        status = created.status
        if status == "created":
            return Created(jid=created.text("jid"), token=created.number("token"))
        if status == "duplicate":
            return Created(jid=created.text("jid"), token=0, duplicate=True)
        if status == "cooldown":
            raise CooldownError(created.number("wait_ms"))
        if status == "user_quota":
            raise QuotaExceededError("user", created.number("active"), limits.user_active)
        if status in ("member_budget", "guild_budget"):
            raise BudgetExceededError(
                status.removesuffix("_budget"),
                created.number("budget_ms"),
                created.number("left_ms"),
                created.number("estimate_ms"),
            )
        if status == "member_quota":
            raise QuotaExceededError("member", created.number("active"), limits.member_active)
        raise QuotaExceededError("guild", created.number("active"), limits.guild_active)

    async def attach_runpod_id(self, job: TrackedJob, runpod_id: str, first_poll_delay_ms: int) -> int | None:
        """Record RunPod's id after a successful /run and schedule the first poll; None if the job is gone.

        A job whose webhook already arrived is scheduled at once instead.
        """
        keys = self.keys
        reply = await self._run(
            "attach",
            [
                keys.job(job.jid),
                keys.due(job.endpoint_id),
                keys.runpod_job(runpod_id),
                keys.user_active(job.user_id),
                keys.guild_active(job.guild_id or NO_GUILD),
                keys.stats(),
                keys.queued(job.endpoint_id),
            ],
            [job.jid, runpod_id, first_poll_delay_ms, self.config.runpod_index_ttl_s, "1" if job.guild_id else "0"],
        )
        attached = Reply(reply, "attach")
        return attached.number("token") if attached.status == "attached" else None

    async def claim_due(
        self,
        endpoint_id: str,
        *,
        limit: int,
        lease_ms: int,
        budget_per_second: int = 0,
        burst_ms: int = DEFAULT_BURST_MS,
        only: Collection[str] | None = None,
    ) -> ClaimBatch:
        """Claim up to `limit` due jobs of the endpoint, oldest first, within the shared `/status` budget.

        `budget_per_second` (0: unlimited) is the bucket's refill rate and `burst_ms` its size in time. With `only`,
        just those jobs are claimed and `next_due_ms` is about them alone.
        """
        keys = self.keys
        restricted = ["1", *sorted(only)] if only is not None else ["0"]
        reply = await self._run(
            "claim",
            [keys.due(endpoint_id), keys.status_budget(endpoint_id), keys.queued(endpoint_id)],
            [limit, lease_ms, budget_per_second, keys.job(""), burst_ms, *restricted],
        )
        batch = Reply(reply, "claim")
        claimed = [_claimed(Reply(entry, "claimed job")) for entry in batch["jobs"]]
        next_due = batch.number("next_due_ms")
        return ClaimBatch(
            jobs=claimed,
            now_ms=batch.number("now_ms"),
            budget_left=batch.number("budget_left"),
            budget_wait_ms=batch.number("budget_wait_ms"),
            next_due_ms=next_due if next_due >= 0 else None,
        )

    async def apply(self, ops: Sequence[StoreOp[R]]) -> list[R]:
        """Run every transition atomically in one round trip; each op's result (its own type) is in the same place.

        Each is fenced on its own job exactly as the single calls below: a lost lease refuses that op only.
        """
        if not ops:
            return []
        keys: list[str] = []
        args: list[Any] = [len(ops)]
        for op in ops:
            name, op_keys, op_args = op.encode(self.keys, self.config)
            keys += op_keys
            args += [name, len(op_keys), len(op_args), *op_args]
        replies = await self._run("batch", keys, args)
        return [op.decode(Reply(reply, type(op).__name__)) for op, reply in zip(ops, replies, strict=True)]

    async def apply_one(self, op: StoreOp[R]) -> R:
        """Run one transition (a batch of one)."""
        (result,) = await self.apply([op])
        return result

    async def reschedule(
        self,
        claimed: Claimed,
        delay_ms: int,
        *,
        state: JobState | None = None,
        fields: Mapping[str, Any] | None = None,
        polled: bool = True,
    ) -> Rescheduled | None:
        """Store what a poll learned and schedule the next action; None when the lease was lost."""
        return await self.apply_one(Reschedule(claimed, delay_ms, state=state, fields=fields, polled=polled))

    async def finalize_begin(
        self,
        claimed: Claimed,
        outcome: JobState,
        *,
        lease_ms: int,
        fields: Mapping[str, Any] | None = None,
        usage: UsageCharge | None = None,
        keep_reservation: bool = False,
    ) -> Finalizing | None:
        """Record the outcome (and add `usage`, once per job; settle its budget reservation: given back, or kept with
        `keep_reservation`) and take a delivery lease; None when the lease was lost or it is already delivered.

        The returned lease holds the record as it is now (outcome and fields included).
        """
        return await self.apply_one(
            FinalizeBegin(
                claimed, outcome, lease_ms=lease_ms, fields=fields, usage=usage, keep_reservation=keep_reservation
            )
        )

    async def finalize_commit(self, claimed: Claimed, *, fields: Mapping[str, Any] | None = None) -> Committed:
        """Mark the job delivered (idempotent); false only when another process holds the job now."""
        return await self.apply_one(FinalizeCommit(claimed, fields=fields))

    async def take_for_webhook(self, endpoint_id: str, jid: str, *, lease_ms: int) -> WebhookTake:
        """Take a live job's lease because its webhook arrived (the previous holder can no longer commit).

        `status` is `taken` (with `claimed`), `submitting` (its /run reply is still awaited: it will be due at once
        when attached), `finished` (with `state`: its outcome is already being delivered) or `gone`.
        """
        reply = await self._run(
            "batch",
            [self.keys.job(jid), self.keys.due(endpoint_id)],
            [1, "take", 2, 2, jid, lease_ms],
        )
        return self._webhook_reply(reply[0])

    async def make_due_for_webhook(self, endpoint_id: str, jid: str) -> WebhookTake:
        """Make a live job due at once because its webhook arrived; `status` is `due` or as `take_for_webhook`."""
        reply = await self._run(
            "batch",
            [self.keys.job(jid), self.keys.due(endpoint_id)],
            [1, "make_due", 2, 1, jid],
        )
        return self._webhook_reply(reply[0])

    @staticmethod
    def _webhook_reply(raw: Any) -> WebhookTake:
        reply = Reply(raw, "webhook")
        status = reply.status
        if status == "taken":
            return WebhookTake(status, claimed=Claimed(job=reply.job(), token=reply.number("token")))
        if status == "finished":
            return WebhookTake(status, state=JobState(reply.text("state")))
        return WebhookTake(status)

    async def request_cancel(self, job: TrackedJob, actor_id: int, *, due_now: bool = True) -> CancelRequest:
        """Note a cancel request on a live job and (with `due_now`) make it due at once; idempotent."""
        reply = await self._run(
            "request_cancel",
            [self.keys.job(job.jid), self.keys.due(job.endpoint_id)],
            [job.jid, actor_id, "1" if due_now else "0"],
        )
        answer = Reply(reply, "request_cancel")
        state_text, first, actor = answer.text("state"), answer.text("first"), answer.text("requested_by")
        return CancelRequest(
            state=JobState(state_text) if state_text else None,
            first=first == "1",
            requested_by=int(actor) if actor else None,
        )

    async def note_cancel(self, job: TrackedJob, outcome: str) -> bool:
        """Record RunPod's answer to a cancel and make the job due at once if it is live; False when it is gone."""
        reply = await self._run(
            "note_cancel", [self.keys.job(job.jid), self.keys.due(job.endpoint_id)], [job.jid, outcome]
        )
        return bool(reply)

    async def reopen_delivery(self, job: TrackedJob, extra: Mapping[str, Any]) -> bool:
        """Make a job whose delivery was given up due for delivery again, with `extra` (its extra without the
        failure); False when it is gone or changed since `job` was read (reopened or delivered meanwhile)."""
        reply = await self._run(
            "reopen_delivery",
            [self.keys.job(job.jid), self.keys.due(job.endpoint_id), self.keys.stats()],
            [job.jid, encode_field("extra", job.extra), encode_field("extra", dict(extra))],
        )
        return Reply(reply, "reopen_delivery").status == "reopened"

    # --- presses (a member's press of a button, once) -------------------------------------------------------------

    def _press_key(self, press: Press) -> str:
        return self.keys.press(press.guild, press.member, press.message, press.button)

    async def claim_press(self, press: Press, hold_ms: int) -> PressHold:
        """Hold `press` for `hold_ms` under a new token, unless another press holds it (atomic across processes)."""
        token = secrets.token_hex(8)
        answer = Reply(await self._run("press_claim", [self._press_key(press)], [token, hold_ms]), "press_claim")
        if answer.text("claimed") == "1":
            return PressHold(token)
        _holder, _, jid = answer.text("held_by").partition(" ")
        return PressHold(None, jid or None)

    async def press_started(self, press: Press, token: str, jid: str) -> bool:
        """Record the job the press holding `token` started; False when its hold has run out."""
        return bool(await self._run("press_started", [self._press_key(press)], [token, jid]))

    async def end_press(self, press: Press, token: str, keep_ms: int) -> bool:
        """Keep the press held `keep_ms` more (0: release it now); False when `token` no longer held it."""
        return bool(await self._run("press_end", [self._press_key(press)], [token, keep_ms]))

    async def release(self, claims: Iterable[Claimed]) -> int:
        """Make every job still held under these leases due at once (graceful shutdown); returns how many."""
        results = await self.apply([Release(claim) for claim in claims])
        return sum(1 for result in results if result.released)

    async def update(self, jid: str, fields: Mapping[str, Any]) -> bool:
        """Set fields on an existing record (card message id, result ids); False when there is no such job."""
        if not fields:
            return await self.exists(jid)
        return bool(await self._run("update", [self.keys.job(jid)], _pairs(fields)))

    async def record_endpoint_error(self, endpoint_id: str, message: str) -> None:
        """Remember RunPod's latest error for the endpoint (kept a day), for moderators' health view."""
        await self.apply([RecordError(endpoint_id, message)])

    # --- reads -------------------------------------------------------------------------------------------------

    async def endpoint_error(self, endpoint_id: str) -> EndpointError | None:
        self.round_trips += 1
        raw = await self.redis.hgetall(self.keys.endpoint_error(endpoint_id))
        if not raw:
            return None
        fields = {_text(key): _text(value) for key, value in raw.items()}
        at = datetime.fromtimestamp(int(fields["at"]) / 1000, tz=UTC)
        return EndpointError(message=fields["message"], at=at)

    async def exists(self, jid: str) -> bool:
        self.round_trips += 1
        return bool(await self.redis.exists(self.keys.job(jid)))

    async def get(self, jid: str) -> TrackedJob | None:
        self.round_trips += 1
        raw = await self.redis.hgetall(self.keys.job(jid))
        return TrackedJob.from_hash(raw) if raw else None

    async def get_many(self, jids: Sequence[str]) -> list[TrackedJob]:
        """The records that still exist, in the order asked, in one round trip."""
        if not jids:
            return []
        self.round_trips += 1
        async with self.redis.pipeline(transaction=False) as pipe:
            for jid in jids:
                pipe.hgetall(self.keys.job(jid))
            replies = await pipe.execute()
        return [TrackedJob.from_hash(raw) for raw in replies if raw]

    async def jid_for_runpod_id(self, runpod_id: str) -> str | None:
        self.round_trips += 1
        value = await self.redis.get(self.keys.runpod_job(runpod_id))
        return _text(value) if value is not None else None

    async def user_recent(self, user_id: int, limit: int = 10) -> list[TrackedJob]:
        """The user's most recent jobs, newest first."""
        self.round_trips += 1
        jids = await self.redis.zrevrange(self.keys.user_jobs(user_id), 0, limit - 1)
        return await self.get_many([_text(jid) for jid in jids])

    async def user_active(self, user_id: int) -> list[TrackedJob]:
        """The user's unfinished jobs, oldest first."""
        self.round_trips += 1
        jids = await self.redis.zrange(self.keys.user_active(user_id), 0, -1)
        return await self.get_many([_text(jid) for jid in jids])

    async def guild_active(self, guild_id: int, limit: int = 100) -> list[TrackedJob]:
        """The guild's unfinished jobs, oldest first."""
        self.round_trips += 1
        jids = await self.redis.zrange(self.keys.guild_active(guild_id), 0, limit - 1)
        return await self.get_many([_text(jid) for jid in jids])

    async def endpoint_ids(self) -> list[str]:
        """Every endpoint that has a schedule."""
        self.round_trips += 1
        return sorted(_text(value) for value in await self.redis.smembers(self.keys.endpoints()))

    async def counts(self) -> dict[str, int]:
        """Unfinished jobs per state (`state:QUEUED`…) and delivered jobs per outcome (`delivered:COMPLETED`…)."""
        self.round_trips += 1
        raw = await self.redis.hgetall(self.keys.stats())
        return {_text(name): int(value) for name, value in raw.items() if int(value) != 0}

    async def due_lag_ms(self, endpoint_id: str) -> int:
        """How late the most overdue job of the endpoint is (0 when nothing is overdue)."""
        self.round_trips += 1
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.keys.due(endpoint_id), 0, 0, withscores=True)
            pipe.time()
            oldest, (seconds, micros) = await pipe.execute()
        if not oldest:
            return 0
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        return max(0, now_ms - int(oldest[0][1]))

    async def scheduled(self, endpoint_id: str, limit: int = 100) -> list[TrackedJob]:
        """The endpoint's scheduled jobs (live or awaiting delivery), most overdue first."""
        self.round_trips += 1
        jids = await self.redis.zrange(self.keys.due(endpoint_id), 0, limit - 1)
        return await self.get_many([_text(jid) for jid in jids])

    async def scheduled_count(self, endpoint_id: str) -> int:
        """How many jobs of the endpoint are scheduled (live or awaiting delivery)."""
        self.round_trips += 1
        count: int = await self.redis.zcard(self.keys.due(endpoint_id))
        return count

    async def execution_samples(self, endpoint_id: str) -> list[int]:
        """Recent execution times (ms) of the endpoint's completed jobs, newest first, from every process."""
        self.round_trips += 1
        raw = await self.redis.lrange(self.keys.execution_samples(endpoint_id), 0, -1)
        return [int(value) for value in raw]
