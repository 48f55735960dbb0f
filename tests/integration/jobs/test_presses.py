"""Once per press, in the core on the real Redis: a member's second press of the same button is refused while the
first holds it (in every process alike), names the job the first started, and holds nothing once the first press
started none."""

from __future__ import annotations

import asyncio

from jobs.presses import PRESS_HOLD_MS, PRESS_WINDOW_MS, EarlierPress, PressTicket
from jobs.service import JobService, RunSettings
from storage.models import Press
from storage.store import JobStore, StoreConfig
from tests.integration.jobs.conftest import FAST_POLICY, Core
from tests.waiting import wait_until

V2 = Press(guild="2001", member="1001", message="5001", button="job:v2:0123456789abcdef")
JID = "fedcba9876543210"


def another_process(core: Core, *, window_ms: int = PRESS_WINDOW_MS, hold_ms: int = PRESS_HOLD_MS) -> JobService:
    """A second bot process on the same Redis: its own store and service."""
    store = JobStore(core.store.redis, StoreConfig(submit_lease_ms=400))
    settings = RunSettings(press_window_ms=window_ms, press_hold_ms=hold_ms)
    return JobService(store, core.clients, core.catalog, policy=FAST_POLICY, run_settings=settings)


async def ticket(service: JobService, press: Press = V2) -> PressTicket:
    claim = await service.claim_press(press)
    assert isinstance(claim, PressTicket), claim
    return claim


async def test_two_processes_given_the_same_press_at_once_let_one_through(core: Core) -> None:
    """The two presses of a double click reach two processes at the same moment: one holds the button, the other is
    refused while the first is still starting its job (no job named yet)."""
    claims = await asyncio.gather(core.service.claim_press(V2), another_process(core).claim_press(V2))
    assert sorted(type(claim).__name__ for claim in claims) == ["EarlierPress", "PressTicket"]
    assert EarlierPress(None) in claims


async def test_a_second_press_names_the_job_the_first_started(core: Core) -> None:
    """Once the first press has started its job, the second press is told which."""
    first = await ticket(core.service)
    await first.started(JID)
    assert await another_process(core).claim_press(V2) == EarlierPress(JID)


async def test_a_press_that_started_a_job_holds_its_window_then_lets_go(core: Core) -> None:
    """After the first press is answered, the same press is refused for the window, and then starts anew."""
    service = another_process(core, window_ms=300)
    first = await ticket(service)
    await first.started(JID)
    await first.end()
    assert await service.claim_press(V2) == EarlierPress(JID)

    async def free() -> bool:
        claim = await service.claim_press(V2)
        return isinstance(claim, PressTicket)

    await wait_until(free, timeout_s=5)


async def test_a_press_that_started_no_job_holds_nothing_once_answered(core: Core) -> None:
    """A press refused before any job (quota, cooldown, deny-list) lets the member press again at once."""
    first = await ticket(core.service)
    await first.end()
    await ticket(core.service)


async def test_another_member_or_another_button_is_another_press(core: Core) -> None:
    """While alice's V2 is held, the moderator's V2 and alice's V1 are presses of their own."""
    await ticket(core.service)
    await ticket(core.service, V2.model_copy(update={"member": "1099"}))
    await ticket(core.service, V2.model_copy(update={"button": "job:v1:0123456789abcdef"}))
    await ticket(core.service, V2.model_copy(update={"message": "5002"}))


async def test_a_press_whose_hold_ran_out_does_not_end_the_next_ones(core: Core) -> None:
    """A press handled for longer than its hold neither records its job on, nor releases, the next press's hold."""
    slow = await ticket(another_process(core, hold_ms=100))
    service = another_process(core)
    taken: list[PressTicket] = []

    async def next_press_holds() -> bool:
        claim = await service.claim_press(V2)
        if isinstance(claim, PressTicket):
            taken.append(claim)
        return bool(taken)

    await wait_until(next_press_holds, timeout_s=5)
    await slow.started(JID)
    await slow.end()
    assert await service.claim_press(V2) == EarlierPress(None)
