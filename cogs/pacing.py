"""The notifier's Discord requests, paced under budgets just below Discord's: results first, then progress edits.

Discord limits a bot per route and channel (about 5 message edits per 5 s in one channel; message creates are a
bucket of their own, about as small) and globally (50 requests per second). discord.py does not pace a bot: it learns
each bucket from the reply headers and, once a bucket is spent, queues the next requests for it in arrival order
(`discord.http.Ratelimit`). Forty live cards edited every few seconds in one channel would fill that queue with stale
progress, and a job's final edit (and every later request for the bucket) would wait behind all of it.

So the notifier asks the pacer before each request, and the pacer decides what goes next:
- Delivery first: a result post, a card's final edit or its deletion (`Pacer.slot`) takes its bucket's budget and
  the global one before any progress edit does, in the order asked.
- Then progress edits (`Pacer.offer`), coalesced: a card has at most one edit waiting, and a newer state replaces it.
  The card that has shown something outdated the longest goes first; a card is edited at most once per
  `card_interval_s`. When the budget is short, edits simply wait, and what they would have shown is replaced by
  newer states meanwhile: a busy channel's cards are edited less often, never late in a queue.
- Budgets count a request from the moment its reply came back, not from when it was sent: Discord counts a request
  when it handles it, somewhere in between, so whatever the latency no window of Discord's sees more than the budget.
  While a request is on its way it holds its place in the budget.

Each process paces only its own requests (docs/performance.md says how to split the budgets between processes).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum

from jobs.tasks import BackgroundTasks

log = logging.getLogger(__name__)

# How often the state of idle buckets and of cards edited long ago is dropped.
PRUNE_EVERY_S = 30.0


class Route(StrEnum):
    """Discord's rate-limit buckets the notifier uses, each counted per channel."""

    EDIT = "edit"  # PATCH /channels/{channel}/messages/{message}
    CREATE = "create"  # POST /channels/{channel}/messages
    DELETE = "delete"  # DELETE /channels/{channel}/messages/{message}


# A route in one channel; None: a request that counts only against the global budget (fetching a user).
Bucket = tuple[Route, int] | None


@dataclass(frozen=True)
class Budget:
    """At most `requests` in any `window_s`."""

    requests: int
    window_s: float


@dataclass(frozen=True)
class DiscordBudget:
    """What one process may ask of Discord: per route and channel, and in all."""

    channel: Budget
    overall: Budget


class PacerClosed(RuntimeError):
    """The pacer stopped before this request had its turn."""


class _Window:
    """A sliding window of requests: those on their way, and the moments the others' replies came back."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._ended: deque[float] = deque()
        self.in_flight = 0

    def _prune(self, now: float) -> None:
        while self._ended and self._ended[0] + self.budget.window_s <= now:
            self._ended.popleft()

    def free_at(self, now: float) -> float:
        """When one more request fits (`now` if it does now; infinity until a request on its way ends)."""
        self._prune(now)
        excess = len(self._ended) + self.in_flight - self.budget.requests
        if excess < 0:
            return now
        if excess >= len(self._ended):
            return math.inf
        return self._ended[excess] + self.budget.window_s

    def take(self) -> None:
        self.in_flight += 1

    def give_back(self, now: float, *, used: bool) -> None:
        self.in_flight -= 1
        if used:
            self._ended.append(now)

    def idle(self, now: float) -> bool:
        self._prune(now)
        return self.in_flight == 0 and not self._ended


@dataclass(eq=False)
class _Request:
    bucket: Bucket
    # The card the request is about: one request per card at a time, so a final edit lands after a progress edit.
    card: Hashable | None
    # When it was asked (delivery), or since when its card shows something outdated (progress).
    since: float
    seq: int


@dataclass(eq=False)
class _Delivery(_Request):
    granted: asyncio.Future[None]


@dataclass(eq=False)
class _Progress(_Request):
    # Sends the card's newest state; False when it sent nothing (nothing changed, the job ended): no budget spent.
    send: Callable[[], Awaitable[bool]]


@dataclass
class Pacer:
    """Grants the notifier's Discord requests their turn; see the module's docstring."""

    budget: DiscordBudget
    # At most one progress edit of a card per this many seconds (CARD_EDIT_INTERVAL_S).
    card_interval_s: float
    _windows: dict[tuple[Route, int], _Window] = field(default_factory=dict)
    _overall: _Window = field(init=False)
    _deliveries: list[_Delivery] = field(default_factory=list)
    _progress: dict[Hashable, _Progress] = field(default_factory=dict)
    # Cards with a request on its way, and when each card's last progress edit started.
    _busy: set[Hashable] = field(default_factory=set)
    _last_progress: dict[Hashable, float] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _loop: asyncio.Task[None] | None = None
    _closed: bool = False
    # Closing: progress edits are no longer taken, while deliveries still get their turns (`settle`).
    _settling: bool = False
    # The progress edits on their way.
    _sends: set[asyncio.Task[None]] = field(default_factory=set)
    _pruned_at: float = field(default_factory=time.monotonic)
    _tasks: BackgroundTasks = field(default_factory=lambda: BackgroundTasks("discord-pacer"))

    def __post_init__(self) -> None:
        self._overall = _Window(self.budget.overall)

    # --- what the notifier asks --------------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, bucket: Bucket, *, card: Hashable | None = None) -> AsyncIterator[None]:
        """A delivery request's turn: the block sends one request (discord.py's own retries of it included).

        Waits only for earlier deliveries, the budgets, and a request about the same `card` already on its way.
        """
        if self._closed:
            raise PacerClosed("the notifier is closing")
        request = _Delivery(bucket, card, time.monotonic(), next(self._seq), asyncio.get_running_loop().create_future())
        self._deliveries.append(request)
        self._kick()
        try:
            await request.granted
        except asyncio.CancelledError:
            if request.granted.done() and not request.granted.cancelled():
                # Granted in the same moment the caller was cancelled: hand the turn back unused.
                self._finish(request, used=False)
            elif request in self._deliveries:
                self._deliveries.remove(request)
                self._kick()
            raise
        try:
            yield
        finally:
            self._finish(request, used=True)

    def offer(self, card: Hashable, bucket: Bucket, send: Callable[[], Awaitable[bool]]) -> None:
        """A card's newer state: `send` replaces the edit waiting for this card, if any, and keeps its place."""
        if self._closed or self._settling:
            return
        waiting = self._progress.get(card)
        since = waiting.since if waiting is not None else time.monotonic()
        seq = waiting.seq if waiting is not None else next(self._seq)
        self._progress[card] = _Progress(bucket, card, since, seq, send)
        self._kick()

    def discard(self, card: Hashable) -> None:
        """Forget the progress edit waiting for this card (its job ended: the final edit has the last word)."""
        self._progress.pop(card, None)

    def holds(self, card: Hashable) -> bool:
        """Something of this card's is waiting or on its way."""
        return card in self._progress or card in self._busy or any(r.card == card for r in self._deliveries)

    def queued(self, bucket: Bucket) -> int:
        """Delivery requests of `bucket` waiting for their turn."""
        return sum(1 for request in self._deliveries if request.bucket == bucket)

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn (progress edits and deliveries)."""
        return len(self._progress) + len(self._deliveries)

    async def settle(self, timeout_s: float) -> None:
        """Take no more progress edits (those waiting are dropped) and give those on their way up to `timeout_s` to
        land; deliveries keep getting their turns meanwhile, so what follows a landed edit (showing the outcome
        again) still can go."""
        self._settling = True
        self._progress.clear()
        if self._sends:
            await asyncio.wait(list(self._sends), timeout=timeout_s)

    async def close(self, timeout_s: float = 0.0) -> None:
        """Stop: waiting progress edits are dropped, waiting deliveries fail with `PacerClosed`, and the edits already
        on their way get `timeout_s` to land before they are cancelled."""
        self._closed = True
        self._progress.clear()
        for request in self._deliveries:
            if not request.granted.done():
                request.granted.set_exception(PacerClosed("the notifier is closing"))
        self._deliveries.clear()
        # The dispatcher waits for a change: wake it, so it sees the pacer closed and ends.
        self._changed.set()
        await self._tasks.close(timeout_s=timeout_s)

    # --- deciding what goes next -------------------------------------------------------------------------------

    def _kick(self) -> None:
        if self._closed:
            return
        if self._loop is None or self._loop.done():
            self._loop = self._tasks.spawn(self._run(), name="discord-pacer")
        self._changed.set()

    async def _run(self) -> None:
        while not self._closed:
            self._changed.clear()
            now = time.monotonic()
            wake_at = self._dispatch(now)
            if wake_at == math.inf:
                await self._changed.wait()
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=max(0.0, wake_at - now))

    def _dispatch(self, now: float) -> float:
        """Start every request that may go now, deliveries first; when the next one may go (infinity: when a
        request on its way ends or a new one arrives)."""
        self._prune(now)
        wake_at = math.inf
        # Buckets a waiting delivery needs: no progress edit takes their budget first.
        claimed: set[Bucket] = set()
        overall_claimed = False
        for request in list(self._deliveries):
            ready_at = self._ready_at(request, now)
            if ready_at <= now:
                self._deliveries.remove(request)
                self._start(request, now)
                request.granted.set_result(None)
                continue
            wake_at = min(wake_at, ready_at)
            claimed.add(request.bucket)
            if self._card_free(request) and self._bucket_free_at(request.bucket, now) <= now:
                # Only the global budget holds it back: progress edits must not take it either.
                overall_claimed = True
        if overall_claimed:
            return wake_at
        while True:
            best: _Progress | None = None
            for progress in self._progress.values():
                if progress.bucket in claimed:
                    continue
                ready_at = self._ready_at(progress, now)
                if ready_at > now:
                    wake_at = min(wake_at, ready_at)
                elif best is None or (progress.since, progress.seq) < (best.since, best.seq):
                    best = progress
            if best is None:
                return wake_at
            del self._progress[best.card]
            self._start(best, now)
            send = self._tasks.spawn(self._send(best), name=f"card-edit-{best.card}")
            self._sends.add(send)
            send.add_done_callback(self._sends.discard)

    def _ready_at(self, request: _Request, now: float) -> float:
        if not self._card_free(request):
            return math.inf
        ready_at = max(self._overall.free_at(now), self._bucket_free_at(request.bucket, now))
        if isinstance(request, _Progress):
            ready_at = max(ready_at, self._last_progress.get(request.card, -math.inf) + self.card_interval_s)
        return ready_at

    def _card_free(self, request: _Request) -> bool:
        return request.card is None or request.card not in self._busy

    def _bucket_free_at(self, bucket: Bucket, now: float) -> float:
        return self._window(bucket).free_at(now) if bucket is not None else now

    def _window(self, bucket: tuple[Route, int]) -> _Window:
        window = self._windows.get(bucket)
        if window is None:
            window = self._windows[bucket] = _Window(self.budget.channel)
        return window

    def _start(self, request: _Request, now: float) -> None:
        self._overall.take()
        if request.bucket is not None:
            self._window(request.bucket).take()
        if request.card is not None:
            self._busy.add(request.card)
        if isinstance(request, _Progress):
            self._last_progress[request.card] = now

    def _finish(self, request: _Request, *, used: bool) -> None:
        now = time.monotonic()
        self._overall.give_back(now, used=used)
        if request.bucket is not None:
            self._window(request.bucket).give_back(now, used=used)
        if request.card is not None:
            self._busy.discard(request.card)
        self._kick()

    async def _send(self, request: _Progress) -> None:
        # An error is the request's cost too (it may have reached Discord); a cancellation at close spends nothing.
        used = True
        try:
            used = await request.send()
        except asyncio.CancelledError:
            used = False
            raise
        except Exception:
            log.exception("card %s: progress edit failed", request.card)
        finally:
            if not used:
                # Nothing was sent: the card may be edited again at once.
                self._last_progress.pop(request.card, None)
            self._finish(request, used=used)

    def _prune(self, now: float) -> None:
        """Drop what no longer holds anything back: idle buckets, and cards whose interval has passed."""
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        for bucket in [bucket for bucket, window in self._windows.items() if window.idle(now)]:
            del self._windows[bucket]
        cutoff = now - self.card_interval_s
        for card in [card for card, started in self._last_progress.items() if started <= cutoff]:
            del self._last_progress[card]
