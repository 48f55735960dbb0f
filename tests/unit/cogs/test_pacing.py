"""The pacer on its own, with short windows: what goes next when the budget is short."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cogs.pacing import Budget, DiscordBudget, Pacer, Route

CHANNEL = (Route.EDIT, 1)
OTHER_CHANNEL = (Route.EDIT, 2)
# One request per window: each test sees the order in which requests get their turn.
WINDOW_S = 0.15


@pytest.fixture
async def pacer() -> AsyncIterator[Pacer]:
    pacer = Pacer(DiscordBudget(channel=Budget(1, WINDOW_S), overall=Budget(50, 1.0)), card_interval_s=0)
    yield pacer
    await pacer.close()


class Sent:
    """What was sent, in order, and when each request ended."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.ended: list[float] = []
        self.changed = asyncio.Event()

    def edit(self, what: str) -> Callable[[], Awaitable[bool]]:
        async def send() -> bool:
            self.record(what)
            return True

        return send

    def record(self, what: str) -> None:
        self.order.append(what)
        self.ended.append(time.monotonic())
        self.changed.set()

    async def wait(self, count: int) -> list[str]:
        """The order once `count` requests were sent."""
        async with asyncio.timeout(5):
            while len(self.order) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.order


async def test_an_edit_waiting_for_its_turn_is_replaced_by_the_cards_newer_state(pacer: Pacer) -> None:
    """While the budget is spent, three newer states of a card leave one edit waiting: the newest."""
    sent = Sent()
    pacer.offer("a", CHANNEL, sent.edit("a1"))
    await sent.wait(1)
    for state in ("a2", "a3", "a4"):
        pacer.offer("a", CHANNEL, sent.edit(state))
    assert pacer.waiting == 1
    assert await sent.wait(2) == ["a1", "a4"]


async def test_the_card_outdated_longest_goes_first(pacer: Pacer) -> None:
    """Cards wait in the order their content went stale; a newer state of a waiting card keeps its place."""
    sent = Sent()
    pacer.offer("first", CHANNEL, sent.edit("first"))
    await sent.wait(1)
    pacer.offer("b", CHANNEL, sent.edit("b1"))
    pacer.offer("c", CHANNEL, sent.edit("c1"))
    pacer.offer("b", CHANNEL, sent.edit("b2"))
    assert await sent.wait(3) == ["first", "b2", "c1"]


async def test_a_delivery_goes_before_the_progress_edits_waiting_in_its_channel(pacer: Pacer) -> None:
    """A result's turn comes before every progress edit that was waiting for the same budget."""
    sent = Sent()
    pacer.offer("first", CHANNEL, sent.edit("first"))
    await sent.wait(1)
    for card in ("b", "c", "d"):
        pacer.offer(card, CHANNEL, sent.edit(card))
    async with pacer.slot(CHANNEL):
        sent.record("final")
    assert await sent.wait(5) == ["first", "final", "b", "c", "d"]


async def test_a_delivery_goes_before_progress_edits_of_other_channels_when_the_global_budget_is_short() -> None:
    """With one request per window in all, a result in one channel goes before another channel's progress."""
    pacer = Pacer(DiscordBudget(channel=Budget(5, WINDOW_S), overall=Budget(1, WINDOW_S)), card_interval_s=0)
    sent = Sent()
    try:
        pacer.offer("first", CHANNEL, sent.edit("first"))
        await sent.wait(1)
        pacer.offer("b", OTHER_CHANNEL, sent.edit("b"))
        async with pacer.slot(CHANNEL):
            sent.record("final")
        assert await sent.wait(3) == ["first", "final", "b"]
    finally:
        await pacer.close()


async def test_a_delivery_about_a_card_waits_for_that_cards_edit_on_its_way(pacer: Pacer) -> None:
    """A final edit never overtakes the progress edit of its card already sent: it lands after it."""
    sent = Sent()
    release = asyncio.Event()

    async def slow_edit() -> bool:
        await release.wait()
        sent.record("progress")
        return True

    pacer.offer("a", (Route.EDIT, 3), slow_edit)

    async def final() -> None:
        async with pacer.slot((Route.DELETE, 3), card="a"):
            sent.record("final")

    finishing = asyncio.create_task(final())
    await asyncio.sleep(WINDOW_S)
    assert sent.order == []
    release.set()
    await finishing
    assert sent.order == ["progress", "final"]


async def test_the_window_counts_from_each_reply(pacer: Pacer) -> None:
    """A request that took a while holds its budget for a whole window after its reply came back."""
    sent = Sent()

    async def slow_edit() -> bool:
        await asyncio.sleep(WINDOW_S)
        sent.record("slow")
        return True

    pacer.offer("a", CHANNEL, slow_edit)
    pacer.offer("b", CHANNEL, sent.edit("b"))
    await sent.wait(2)
    assert sent.ended[1] - sent.ended[0] >= WINDOW_S


async def test_an_edit_that_sent_nothing_spends_no_budget() -> None:
    """An edit that found nothing new to show hands its turn to the next card at once."""
    # A long window, so a loaded machine cannot blur "at once" and "after the window".
    window_s = 3.0
    pacer = Pacer(DiscordBudget(channel=Budget(1, window_s), overall=Budget(50, 1.0)), card_interval_s=0)
    sent = Sent()

    async def nothing_new() -> bool:
        return False

    try:
        pacer.offer("a", CHANNEL, nothing_new)
        pacer.offer("b", CHANNEL, sent.edit("b"))
        started = time.monotonic()
        await sent.wait(1)
        assert sent.ended[0] - started < window_s
    finally:
        await pacer.close()


async def test_a_settling_pacer_lets_the_edit_on_its_way_land_then_grants_what_follows_it(pacer: Pacer) -> None:
    """While the pacer settles before closing, an edit on its way lands and the outcome asked after it still gets its
    turn, while a new progress edit is dropped."""
    sent = Sent()
    release = asyncio.Event()

    async def late_edit() -> bool:
        await release.wait()
        sent.record("late progress")

        async def restore() -> None:
            async with pacer.slot(CHANNEL, card="a"):
                sent.record("outcome")

        asyncio.get_running_loop().create_task(restore())
        return True

    pacer.offer("a", CHANNEL, late_edit)
    await asyncio.sleep(0)
    settling = asyncio.create_task(pacer.settle(timeout_s=5))
    await asyncio.sleep(0)
    pacer.offer("b", OTHER_CHANNEL, sent.edit("dropped"))
    release.set()
    await settling
    assert await sent.wait(2) == ["late progress", "outcome"]
    await asyncio.sleep(WINDOW_S)
    assert sent.order == ["late progress", "outcome"]
