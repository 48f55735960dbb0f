"""A member's double press, end to end: Discord clients do not debounce, so the same member pressing the same button
of the same message twice sends two interactions. The second starts nothing: it is told where the first one's job
is. Other members, other buttons, and a press after the window still start their jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cogs.variations import VARY_MENU_NAME
from jobs.presses import PRESS_WINDOW_MS
from storage.models import JobState
from tests.e2e.bot.conftest import CARD_LINK, Harness, answer_text, cards, final_message, is_ephemeral, job_of
from tests.e2e.bot.test_result_upscale import DRAWN, models_with_upscaler
from tests.e2e.bot.test_result_variations import two_image_result
from tests.fakes.discord.views import MessageView
from tests.waiting import wait_until

SUBMITTED = "Submitted — https://discord.com/channels/"


async def press_twice(harness: Harness, message: MessageView, custom_id: str, user_id: int) -> list[str]:
    """The member presses the button twice, back to back (a double click); the two answers, in any order, each for
    the member's eyes alone."""
    first = await harness.fake.click_button(message["id"], custom_id, user_id)
    second = await harness.fake.click_button(message["id"], custom_id, user_id)
    answers = await asyncio.gather(harness.answered(first), harness.answered(second))
    assert all(map(is_ephemeral, answers))
    return sorted(final_message(answer)["content"] for answer in answers)


def runs(harness: Harness) -> int:
    return harness.emulator.counters.request_count("run")


async def test_a_double_press_of_v2_starts_one_variation(harness: Harness) -> None:
    """V2 pressed twice at once: one job, and the second press is told it already pressed V2 on this result."""
    async with harness.running():
        parent = await two_image_result(harness)
        first, second = await press_twice(harness, parent, f"job:v2:{job_of(parent)}", harness.alice)
    assert first.startswith(SUBMITTED), first
    assert second.startswith("You already pressed **V2** on this result"), second
    assert runs(harness) == 2


async def test_a_double_press_of_u1_with_an_upscaler_starts_one_upscale(harness: Harness, tmp_path: Path) -> None:
    """U1 pressed twice at once, with an upscaler configured: one upscale job, one "already pressed" answer."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        parent = await two_image_result(harness, prompt=DRAWN)
        first, second = await press_twice(harness, parent, f"job:u1:{job_of(parent)}", harness.alice)
    assert first.startswith(SUBMITTED), first
    assert second.startswith("You already pressed **U1** on this result"), second
    assert runs(harness) == 2


async def test_a_double_press_of_reroll_starts_one_job(harness: Harness) -> None:
    """Re-roll pressed twice at once: one new job, one "already pressed" answer."""
    async with harness.running():
        parent = await two_image_result(harness)
        first, second = await press_twice(harness, parent, f"job:reroll:{job_of(parent)}", harness.alice)
    assert first.startswith(SUBMITTED), first
    assert second.startswith("You already pressed **Re-roll** on this result"), second
    assert runs(harness) == 2


async def test_the_remix_form_submitted_twice_starts_one_job(harness: Harness) -> None:
    """Remix opened twice and both forms submitted back to back: one job; the second is told it was submitted."""
    async with harness.running():
        parent = await two_image_result(harness)
        opened = [
            await harness.fake.click_button(parent["id"], f"job:remix:{job_of(parent)}", harness.alice) for _ in "ab"
        ]
        for click in opened:
            await harness.fake.wait_for_modal(click["id"])
        submitted = [await harness.fake.submit_modal(click["id"], {"prompt": "a castle at night"}) for click in opened]
        answered = await asyncio.gather(*map(harness.answered, submitted))
    assert all(map(is_ephemeral, answered))
    answers = sorted(final_message(answer)["content"] for answer in answered)
    first, second = answers
    assert first.startswith(SUBMITTED), first
    assert second.startswith("You already submitted the **Remix** form of this result"), second
    assert runs(harness) == 2


async def test_a_second_press_links_the_card_of_the_job_the_first_started(harness: Harness) -> None:
    """V2 pressed again just after the first press was answered: the answer links the first press's job card."""
    async with harness.running():
        parent = await two_image_result(harness)
        # The variation waits for a worker, so its card stays where the link points.
        harness.emulator.update_scenario(workers=0)
        first = await harness.answered(
            await harness.fake.click_button(parent["id"], f"job:v2:{job_of(parent)}", harness.alice)
        )
        again = await harness.answered(
            await harness.fake.click_button(parent["id"], f"job:v2:{job_of(parent)}", harness.alice)
        )
        live_cards = cards(await harness.messages())
    link = CARD_LINK.search(answer_text(first))
    assert link is not None, answer_text(first)
    assert final_message(again)["content"] == (
        f"You already pressed **V2** on this result: your job is {link[0]}. "
        f"Wait {PRESS_WINDOW_MS // 1000} s to start another."
    )
    assert len(live_cards) == 1
    assert runs(harness) == 2


async def test_two_members_pressing_v2_at_once_each_start_a_job(harness: Harness) -> None:
    """Alice and the server's moderator press V2 at the same moment: two jobs, each told "Submitted"."""
    async with harness.running():
        parent = await two_image_result(harness)
        custom_id = f"job:v2:{job_of(parent)}"
        clicks = [
            await harness.fake.click_button(parent["id"], custom_id, user) for user in (harness.alice, harness.mod)
        ]
        answers = await asyncio.gather(*map(harness.answered, clicks))
    assert [answer_text(answer).startswith(SUBMITTED) for answer in answers] == [True, True]
    assert runs(harness) == 3


async def test_v1_then_v2_back_to_back_start_two_variations(harness: Harness) -> None:
    """The same member pressing V1 then V2 at once: two different presses, two jobs."""
    async with harness.running():
        parent = await two_image_result(harness)
        clicks = [
            await harness.fake.click_button(parent["id"], f"job:v{index}:{job_of(parent)}", harness.alice)
            for index in (1, 2)
        ]
        answers = await asyncio.gather(*map(harness.answered, clicks))
    assert [answer_text(answer).startswith(SUBMITTED) for answer in answers] == [True, True]
    assert runs(harness) == 3


async def test_a_press_after_the_window_starts_a_new_job(harness: Harness) -> None:
    """V2 pressed again once the window after the first press has passed: a second variation."""
    async with harness.running():
        parent = await two_image_result(harness)
        custom_id = f"job:v2:{job_of(parent)}"
        first = await harness.answered(await harness.fake.click_button(parent["id"], custom_id, harness.alice))
        # The window is measured on Redis's clock from the end of the first press; a little more is waited.
        await asyncio.sleep(PRESS_WINDOW_MS / 1000 + 0.5)
        later = await harness.answered(await harness.fake.click_button(parent["id"], custom_id, harness.alice))
    assert answer_text(first).startswith(SUBMITTED)
    assert answer_text(later).startswith(SUBMITTED), answer_text(later)
    assert runs(harness) == 3


async def test_a_press_refused_by_the_quota_does_not_hold_the_button(harness: Harness) -> None:
    """V1 refused by the member's quota holds nothing: once the quota has room, V1 at once starts the job."""
    async with harness.running(user_active_jobs=1):
        parent = await two_image_result(harness)
        custom_id = f"job:v1:{job_of(parent)}"
        harness.emulator.update_scenario(workers=0)
        waiting = await harness.imagine(prompt="waiting in line")
        refused = await harness.answered(await harness.fake.click_button(parent["id"], custom_id, harness.alice))
        waiting_jid = await harness.jid_of(waiting)
        (card,) = cards(await harness.messages())
        await harness.answered(await harness.fake.click_button(card["id"], f"job:cancel:{waiting_jid}", harness.alice))

        async def quota_free() -> bool:
            return (await harness.redis_jobs(waiting_jid)).final_state is JobState.CANCELLED

        await wait_until(quota_free)
        allowed = await harness.answered(await harness.fake.click_button(parent["id"], custom_id, harness.alice))
    assert "(the limit is 1)" in answer_text(refused)
    assert answer_text(allowed).startswith(SUBMITTED), answer_text(allowed)
    assert runs(harness) == 3


async def test_picking_image_2_twice_in_the_vary_picker_starts_one_variation(harness: Harness) -> None:
    """Bob picks Image 2 twice at once in the picker of *Vary this image*: one job, and the second pick is told so;
    picking Image 1 then is another choice, and starts its own job."""
    async with harness.running():
        parent = await two_image_result(harness)
        menu = await harness.fake.invoke_message_command(parent["id"], harness.bob, VARY_MENU_NAME)
        picker = await harness.fake.wait_for_original(menu["id"])
        custom_id = picker["components"][0]["components"][0]["custom_id"]
        picks = [await harness.fake.select(picker["id"], custom_id, harness.bob, ["2"]) for _ in "ab"]
        first, second = sorted(
            final_message(answer)["content"] for answer in await asyncio.gather(*map(harness.answered, picks))
        )
        other = await harness.answered(await harness.fake.select(picker["id"], custom_id, harness.bob, ["1"]))
    assert first.startswith(SUBMITTED), first
    assert second.startswith("You already picked **Image 2** on this message"), second
    assert final_message(other)["content"].startswith(SUBMITTED)
    assert runs(harness) == 3
