"""Discord's REST rate limits: per-route buckets keyed by their top-level resource, and the global limit.

Off by default. On, every REST reply carries the bucket's `X-RateLimit-*` headers (what discord.py paces itself
by), and a request over a bucket or over the global limit is refused with the 429 Discord sends, before it touches
the world. Windows are fixed: a bucket's window opens with its first request and closes `per` seconds later, by
the fake's clock, so `advance_clock` empties every bucket. tests/fakes/README.md says where each number comes from.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.fakes.discord.clock import DISCORD_EPOCH_MS, Clock
from tests.fakes.discord.errors import ControlError
from tests.fakes.discord.views import BucketStatsView, LimitView, RateLimitStatsView, RateLimitsView


@dataclass(frozen=True)
class Limit:
    """`count` requests per window of `per` seconds."""

    count: int
    per: float

    def view(self) -> LimitView:
        return LimitView(count=self.count, per=self.per)


GLOBAL = "global"
DEFAULT = "default"
MESSAGE_CREATE = "message_create"
MESSAGE_EDIT = "message_edit"
MESSAGE_DELETE_NEW = "message_delete_new"
MESSAGE_DELETE = "message_delete"
MESSAGE_DELETE_OLD = "message_delete_old"
INTERACTION_CALLBACK = "interaction_callback"
INTERACTION_WEBHOOK = "interaction_webhook"

# Discord's numbers (see tests/fakes/README.md, "Rate limits", for the source of each).
DISCORD_LIMITS: Mapping[str, Limit] = {
    GLOBAL: Limit(50, 1.0),
    MESSAGE_CREATE: Limit(5, 5.0),
    MESSAGE_EDIT: Limit(5, 5.0),
    MESSAGE_DELETE_NEW: Limit(5, 1.0),
    MESSAGE_DELETE: Limit(3, 0.333),
    MESSAGE_DELETE_OLD: Limit(30, 4.0),
    INTERACTION_WEBHOOK: Limit(5, 2.0),
    # Discord publishes no number for these; generous enough that the global limit binds first.
    INTERACTION_CALLBACK: Limit(50, 1.0),
    DEFAULT: Limit(50, 1.0),
}

# Interaction endpoints are not bound to the bot's global rate limit (Discord's rate-limit docs).
OUTSIDE_GLOBAL = frozenset({INTERACTION_CALLBACK, INTERACTION_WEBHOOK})
# Message create and edit answer with the same X-RateLimit-Bucket hash, though each keeps its own count.
HASH_GROUPS = {MESSAGE_CREATE: "messages", MESSAGE_EDIT: "messages"}
# Discord's top-level resources: a route's limit is counted separately for each of them.
MAJOR_PARAMETERS = ("channel_id", "guild_id", "application_id", "token")
DELETE_NEW_AGE_MS = 10_000
DELETE_OLD_AGE_MS = 14 * 24 * 3600 * 1000
API_PATTERN_PREFIX = "/api/v{version}"
# Buckets idle past their window are forgotten once there are this many (one per interaction token adds up).
PRUNE_AT = 10_000
RATE_LIMITED = "You are being rate limited."
# discord.py treats a 429 without `Via` as a Cloudflare ban; Discord's replies pass through Google's front end.
VIA = "1.1 google"


def parse_overrides(overrides: Mapping[str, Sequence[float]] | None) -> dict[str, Limit]:
    """Overrides by bucket kind (`{"message_create": (5, 0.5)}`), checked: a known kind, a count, a window."""
    limits: dict[str, Limit] = {}
    for name, value in (overrides or {}).items():
        if name not in DISCORD_LIMITS:
            known = ", ".join(sorted(DISCORD_LIMITS))
            raise ControlError(f"no rate limit called {name!r}; the limits are {known}")
        if isinstance(value, str) or len(value) != 2:
            raise ControlError(f"rate limit {name!r} takes [count, seconds], not {value!r}")
        count, per = value
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ControlError(f"rate limit {name!r}: the count must be a whole number of at least 1, not {count!r}")
        if isinstance(per, bool) or not isinstance(per, int | float) or per <= 0:
            raise ControlError(f"rate limit {name!r}: the window must be a positive number of seconds, not {per!r}")
        limits[name] = Limit(count, float(per))
    return limits


@dataclass(frozen=True)
class BucketKey:
    """Which bucket a request is counted in: its kind, its name in the stats, and its top-level resource."""

    kind: str
    name: str
    route: str
    major: str

    @property
    def global_limited(self) -> bool:
        return self.kind not in OUTSIDE_GLOBAL


@dataclass
class Window:
    """One fixed window: opened at the first request after the last one closed."""

    used: int = 0
    resets_at: float = 0.0

    def take(self, now: float, limit: Limit) -> bool:
        """Count a request if the window has room; False (nothing counted) if it is full."""
        if now >= self.resets_at:
            self.used = 0
            self.resets_at = now + limit.per
        if self.used >= limit.count:
            return False
        self.used += 1
        return True


@dataclass
class Verdict:
    """What the limiter decided for one request: its headers, or the 429 that refuses it."""

    headers: dict[str, str]
    refusal: web.Response | None = None


@dataclass
class Stats:
    requests: int = 0
    limited: int = 0
    limited_global: int = 0
    by_bucket: dict[str, BucketStatsView] = field(default_factory=dict)


class RateLimiter:
    """Discord's rate limits for one bot: classify each REST request, admit it or refuse it, count both."""

    def __init__(
        self,
        clock: Clock,
        *,
        enabled: bool = False,
        overrides: Mapping[str, Sequence[float]] | None = None,
        message_created_at: Callable[[int], datetime | None] = lambda message_id: None,
    ) -> None:
        self.clock = clock
        self._message_created_at = message_created_at
        self._startup = (enabled, parse_overrides(overrides))
        self.enabled, self._overrides = self._startup
        self._windows: dict[tuple[str, str, str], Window] = {}
        self._global = Window()
        self._stats = Stats()

    # --- configuration and stats ---------------------------------------------------------------------------------

    def limit(self, kind: str) -> Limit:
        return self._overrides.get(kind, DISCORD_LIMITS[kind])

    def configure(self, enabled: bool, overrides: Mapping[str, Sequence[float]] | None) -> RateLimitsView:
        """Turn the limits on or off, with Discord's numbers but for `overrides`; every bucket starts empty."""
        self._overrides = parse_overrides(overrides)
        self.enabled = enabled
        self._windows.clear()
        self._global = Window()
        return self.view()

    def reset(self) -> None:
        """Back to the configuration the fake started with; buckets and stats emptied."""
        self.enabled, self._overrides = self._startup
        self._windows.clear()
        self._global = Window()
        self._stats = Stats()

    def view(self) -> RateLimitsView:
        return RateLimitsView(
            enabled=self.enabled, limits={kind: self.limit(kind).view() for kind in sorted(DISCORD_LIMITS)}
        )

    def stats(self) -> RateLimitStatsView:
        stats = self._stats
        return RateLimitStatsView(
            enabled=self.enabled,
            requests=stats.requests,
            limited=stats.limited,
            limited_global=stats.limited_global,
            by_bucket={name: BucketStatsView(**counts) for name, counts in sorted(stats.by_bucket.items())},
        )

    # --- one request ---------------------------------------------------------------------------------------------

    def classify(self, request: web.Request) -> BucketKey | None:
        """The bucket of a request to a known REST route (None for an unknown route)."""
        info = request.match_info
        if info.http_exception is not None:
            return None
        template = info.route.resource.canonical if info.route.resource is not None else ""
        if not template.startswith(API_PATTERN_PREFIX):
            return None
        route = template.removeprefix(API_PATTERN_PREFIX)
        method = request.method
        major = "+".join(info[name] for name in MAJOR_PARAMETERS if name in info)
        if route == "/channels/{channel_id}/messages" and method == "POST":
            kind = MESSAGE_CREATE
        elif route == "/channels/{channel_id}/messages/{message_id}" and method == "PATCH":
            kind = MESSAGE_EDIT
        elif route == "/channels/{channel_id}/messages/{message_id}" and method == "DELETE":
            kind = self._delete_kind(int(info["message_id"]))
        elif route == "/interactions/{interaction_id}/{token}/callback":
            kind = INTERACTION_CALLBACK
            major = f"{info['interaction_id']}+{info['token']}"
        elif route.startswith("/webhooks/{application_id}/{token}"):
            # The original response and every followup of one interaction token share one bucket.
            kind = INTERACTION_WEBHOOK
        else:
            return BucketKey(kind=DEFAULT, name=f"{method} {route}", route=f"{method} {route}", major=major)
        return BucketKey(kind=kind, name=kind, route=kind, major=major)

    def _delete_kind(self, message_id: int) -> str:
        """Deleting a message is limited by its age: newer than 10 s, up to two weeks, older (discord.py keys these
        apart too). An unknown message's age is read from its id."""
        now = self.clock.now()
        created_at = self._message_created_at(message_id)
        if created_at is not None:
            age_ms = (now - created_at).total_seconds() * 1000
        else:
            age_ms = int(now.timestamp() * 1000) - DISCORD_EPOCH_MS - (message_id >> 22)
        if age_ms < DELETE_NEW_AGE_MS:
            return MESSAGE_DELETE_NEW
        return MESSAGE_DELETE if age_ms < DELETE_OLD_AGE_MS else MESSAGE_DELETE_OLD

    def observe(self, key: BucketKey | None) -> Verdict | None:
        """Count a request; with the limits on, admit it (its reply's headers) or refuse it (a 429)."""
        self._stats.requests += 1
        if key is None:
            return None
        counts = self._stats.by_bucket.setdefault(key.name, BucketStatsView(requests=0, limited=0))
        counts["requests"] += 1
        if not self.enabled:
            return None
        now = self.clock.now().timestamp()
        if key.global_limited and not self._global.take(now, self.limit(GLOBAL)):
            self._stats.limited += 1
            self._stats.limited_global += 1
            return Verdict(headers={}, refusal=self._global_refusal(now))
        limit = self.limit(key.kind)
        window = self._window(key, now)
        admitted = window.take(now, limit)
        headers = self._headers(key, limit, window, now)
        if admitted:
            return Verdict(headers=headers)
        self._stats.limited += 1
        counts["limited"] += 1
        return Verdict(headers={}, refusal=self._refusal(headers, window.resets_at - now))

    def _window(self, key: BucketKey, now: float) -> Window:
        if len(self._windows) >= PRUNE_AT:
            self._windows = {k: w for k, w in self._windows.items() if w.resets_at > now}
        return self._windows.setdefault((key.route, key.major, key.kind), Window())

    @staticmethod
    def _headers(key: BucketKey, limit: Limit, window: Window, now: float) -> dict[str, str]:
        reset_after = _ceil_ms(window.resets_at - now)
        return {
            "X-RateLimit-Limit": str(limit.count),
            "X-RateLimit-Remaining": str(limit.count - window.used),
            "X-RateLimit-Reset": f"{now + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": _bucket_hash(key),
        }

    @staticmethod
    def _refusal(headers: Mapping[str, str], retry_after: float) -> web.Response:
        retry_after = _ceil_ms(retry_after)
        all_headers = dict(headers) | {
            "Via": VIA,
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Scope": "user",
        }
        body = {"message": RATE_LIMITED, "retry_after": retry_after, "global": False}
        return _json_429(body, all_headers)

    def _global_refusal(self, now: float) -> web.Response:
        retry_after = _ceil_ms(self._global.resets_at - now)
        headers = {
            "Via": VIA,
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Global": "true",
            "X-RateLimit-Scope": "global",
        }
        body = {"message": RATE_LIMITED, "retry_after": retry_after, "global": True}
        return _json_429(body, headers)


def _ceil_ms(seconds: float) -> float:
    """Round up to the millisecond: a client that waits exactly this long finds the window closed."""
    return max(0.0, math.ceil(round(seconds * 1000, 6)) / 1000)


def _bucket_hash(key: BucketKey) -> str:
    """A stable hash per route (not per resource), as Discord's X-RateLimit-Bucket is."""
    group = HASH_GROUPS.get(key.kind, key.route)
    return hashlib.md5(group.encode(), usedforsecurity=False).hexdigest()


def _json_429(body: dict[str, Any], headers: Mapping[str, str]) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=429, headers={"Content-Type": "application/json", **headers}
    )
