"""Every Redis key the bot uses, built in this one module.

All keys share one hash tag (`{prefix}`) so that the Lua scripts, which touch several keys at once, stay legal on
Redis Cluster: every key lands in the same slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.defaults import DEFAULT_PREFIX


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix; `Keys("rpb").job("abc")` is `{rpb}:job:abc`."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(char in self.prefix for char in "{}: "):
            raise ValueError(f"Redis key prefix {self.prefix!r} must be non-empty without braces, colons or spaces")

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}"

    def job(self, jid: str) -> str:
        """Hash: one tracked job's record."""
        return f"{self.tag}:job:{jid}"

    def due(self, endpoint_id: str) -> str:
        """Sorted set: every job of the endpoint that needs action, scored by when (ms); the score is the lease."""
        return f"{self.tag}:due:{endpoint_id}"

    def endpoints(self) -> str:
        """Set: endpoint ids that have (or had) due jobs, so a poller finds every schedule."""
        return f"{self.tag}:endpoints"

    def status_budget(self, endpoint_id: str) -> str:
        """Hash: the token bucket of `/status` calls for the endpoint, shared by all processes."""
        return f"{self.tag}:budget:{endpoint_id}"

    def queued(self, endpoint_id: str) -> str:
        """Sorted set: the endpoint's jobs waiting in RunPod's queue, by submit time (the oldest starts next)."""
        return f"{self.tag}:queued:{endpoint_id}"

    def execution_samples(self, endpoint_id: str) -> str:
        """List with a TTL: recent execution times (ms) of the endpoint's completed jobs, newest first."""
        return f"{self.tag}:exec:{endpoint_id}"

    def user_active(self, user_id: int) -> str:
        """Sorted set: the user's jobs that are not finished yet (for the quota)."""
        return f"{self.tag}:user:{user_id}:active"

    def user_jobs(self, user_id: int) -> str:
        """Sorted set: the user's recent jobs by creation time (history, trimmed)."""
        return f"{self.tag}:user:{user_id}:jobs"

    def user_cooldown(self, user_id: int) -> str:
        """String with a TTL: present while the user must wait before the next submit."""
        return f"{self.tag}:user:{user_id}:cooldown"

    def guild_active(self, guild_id: int) -> str:
        """Sorted set: the guild's jobs that are not finished yet (for the quota and moderators)."""
        return f"{self.tag}:guild:{guild_id}:active"

    def idempotency(self, request_id: str) -> str:
        """String with a TTL: the job created for a request id (a Discord interaction id), so it is made once."""
        return f"{self.tag}:request:{request_id}"

    def press(self, guild: str, member: str, message: str, button: str) -> str:
        """String with a TTL: a member's press of a button of a message (the front end's opaque names), held by that
        press's token (and, once it started one, its job id) while it is handled and a few seconds after, so a double
        press starts one job. The button comes last: only it may hold colons (a custom_id)."""
        return f"{self.tag}:press:{guild}:{member}:{message}:{button}"

    def runpod_job(self, runpod_id: str) -> str:
        """String with a TTL: our job id for a RunPod job id (`runpod-bot status|cancel` take either id)."""
        return f"{self.tag}:runpod:{runpod_id}"

    def endpoint_error(self, endpoint_id: str) -> str:
        """Hash with a TTL: the last error RunPod gave for the endpoint, and when (for moderators' /health)."""
        return f"{self.tag}:endpoint:{endpoint_id}:last_error"

    def command_tree_hash(self) -> str:
        """String: the hash of the slash commands last synced globally, so unchanged trees are not re-synced."""
        return f"{self.tag}:commands:hash"

    def guild_denylist(self, guild_id: int) -> str:
        """Set: words a guild's moderators refuse in prompts."""
        return f"{self.tag}:guild:{guild_id}:denylist"

    def guild_settings(self, guild_id: int) -> str:
        """Hash, no TTL: a guild's own settings (`/settings`), one field per setting; kept until reset."""
        return f"{self.tag}:guild:{guild_id}:settings"

    def guild_settings_log(self, guild_id: int) -> str:
        """List, no TTL, capped: the latest changes of a guild's settings, newest first (who, when, what)."""
        return f"{self.tag}:guild:{guild_id}:settings:log"

    def guild_member_cooldown(self, guild_id: int, user_id: int) -> str:
        """String with a TTL: when the member last submitted in the guild (ms), while the guild's own longer
        cooldown runs."""
        return f"{self.tag}:guild:{guild_id}:user:{user_id}:cooldown"

    # GPU time added up (storage/usage.py). `period` is `day:YYYY-MM-DD` or `month:YYYY-MM` (UTC); every one of
    # these keys expires (day keys after 35 days, month keys after 400), renewed with each job added.

    def usage_member(self, period: str, user_id: int) -> str:
        """Hash with a TTL: a member's sums for the period, everywhere (jobs, gpu_ms, queue_ms, cost:<currency>,
        and the same per model: model:<name>:gpu_ms…); a day's also `reserved_ms`, the GPU time its unfinished jobs
        reserved under a budget."""
        return f"{self.tag}:usage:{period}:member:{user_id}"

    def usage_guild(self, period: str, guild_id: int) -> str:
        """Hash with a TTL: a server's sums for the period (guild 0: direct messages and the command line), in
        total and per model; a month's also `reserved_ms`, what its unfinished jobs reserved under a budget."""
        return f"{self.tag}:usage:{period}:guild:{guild_id}"

    def usage_guild_member(self, period: str, guild_id: int, user_id: int) -> str:
        """Hash with a TTL: a member's sums for the period in one server (the same fields)."""
        return f"{self.tag}:usage:{period}:guild:{guild_id}:member:{user_id}"

    def usage_guild_members(self, period: str, guild_id: int) -> str:
        """Sorted set with a TTL: a server's members by their GPU milliseconds in the period (its top members)."""
        return f"{self.tag}:usage:{period}:guild:{guild_id}:members"

    def usage_totals(self, period: str) -> str:
        """Hash with a TTL: the bot's sums for the period, in total and per model."""
        return f"{self.tag}:usage:{period}:all"

    def usage_guilds(self, period: str) -> str:
        """Sorted set with a TTL: every server with usage in the period, by its GPU milliseconds."""
        return f"{self.tag}:usage:{period}:guilds"

    def stats(self) -> str:
        """Hash: live jobs per state, and finished jobs per outcome since the counters began."""
        return f"{self.tag}:stats"
