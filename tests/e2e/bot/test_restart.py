"""A bot stopped mid-job and started again: nothing lost, nothing posted twice, old buttons still work."""

from __future__ import annotations

import asyncio

from cogs.jobs_ui import CARD_NONCE, card_view
from cogs.render import card_embed
from storage.models import JobState
from storage.store import JobStore, NewJob, StoreConfig
from tests.e2e.bot.conftest import Harness, answer_text, cards, delivered, job_of, results, wait_until
from tests.fakes.discord.views import InteractionView


async def test_job_running_across_a_restart_is_delivered_once(harness: Harness) -> None:
    """A job in flight when the bot stops is delivered exactly once by the next bot process."""
    harness.emulator.update_scenario(execution_s=2.0)
    async with harness.running():
        await harness.imagine(prompt="across a restart")
        await harness.wait_for_messages(lambda found: bool(cards(found)))
    assert results(await harness.messages()) == []
    async with harness.running():
        messages = await harness.wait_for_messages(delivered)

        async def committed() -> bool:
            # Give a duplicate every chance to appear before looking: the delivery is over.
            return (await harness.redis_jobs(job_of(results(messages)[0]))).state.value == "DELIVERED"

        await wait_until(committed)
        messages = await harness.messages()
    assert len(results(messages)) == 1
    assert cards(messages) == []


async def test_old_cards_buttons_work_after_a_restart(harness: Harness) -> None:
    """The Cancel button on a card posted by the previous process still cancels the job."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        await harness.imagine()
        (card,) = cards(await harness.wait_for_messages(lambda found: bool(cards(found))))
    async with harness.running():
        click = await harness.fake.click_button(card["id"], f"job:cancel:{job_of(card)}", harness.alice)
        assert "Cancelling job" in answer_text(await harness.answered(click))
        messages = await harness.wait_for_messages(lambda found: cards(found)[0]["embeds"][0]["title"] == "Cancelled")
    assert results(messages) == []


async def test_commands_are_synced_only_when_they_change(harness: Harness) -> None:
    """A restart with the same command tree does not register the commands again."""
    async with harness.running():
        pass
    async with harness.running():
        pass
    syncs = [
        request
        for request in await harness.fake.requests()
        if request["method"] == "PUT" and request["path"].endswith("/commands")
    ]
    assert len(syncs) == 1
    names = {command["name"] for command in await harness.fake.commands()}
    assert {"imagine", "cancel", "health", "jobs", "denylist"} <= names


async def test_bot_stopped_mid_submit_finishes_the_submit_first(harness: Harness) -> None:
    """A bot closed while a /run is in flight waits for it: the job is tracked and the member hears where it is."""
    harness.emulator.update_scenario(slow_reply_s=1.0)
    harness.emulator.script_faults("run", "slow")
    async with harness.running():
        interaction = await harness.fake.invoke_command(
            harness.channel_id, harness.alice, "imagine", {"prompt": "closing time"}
        )
        # The card is posted just before /run is sent: from here the submit is in flight.
        (card,) = cards(await harness.wait_for_messages(lambda found: bool(cards(found))))
    answer = await harness.fake.interaction(interaction["id"])
    job = await harness.redis_jobs(job_of(card))
    assert answer_text(answer).startswith("Submitted")
    assert job.runpod_id is not None
    assert job.state is not JobState.SUBMITTING


async def test_command_sent_while_the_bot_is_closing_is_refused_and_starts_nothing(harness: Harness) -> None:
    """A /imagine that arrives while a closing bot waits for the submits in flight is refused, with no job and no
    /run: a submit begun then would be cut short and end "outcome unknown"."""
    harness.emulator.update_scenario(slow_reply_s=2.0)
    harness.emulator.script_faults("run", "slow")
    late: asyncio.Task[InteractionView] | None = None
    async with harness.running() as bot:
        await harness.fake.invoke_command(harness.channel_id, harness.alice, "imagine", {"prompt": "closing time"})
        await harness.wait_for_messages(lambda found: bool(cards(found)))

        async def during_the_close() -> InteractionView:
            await wait_until(lambda: not bot.services.in_flight.accepting)
            return await harness.imagine(user_id=harness.bob, prompt="one more, please")

        late = asyncio.create_task(during_the_close())
    answer = answer_text(await late)
    assert answer.startswith("I'm restarting right now, so I didn't start anything"), answer
    assert await JobStore(harness.redis).user_recent(harness.bob) == []
    assert harness.emulator.snapshot()["received"].get("run", 0) == 1


async def test_card_posted_by_a_process_that_died_unrecorded_shows_the_outcome(harness: Harness) -> None:
    """A card whose process died before storing its id is found by its nonce and edited to "Outcome unknown"."""
    # A short submit lease: the dead process's job comes due at once instead of after two minutes.
    store = JobStore(harness.redis, StoreConfig(submit_lease_ms=300))
    request = {"prompt": "orphaned card", "width": 1024, "height": 1024, "steps": 25, "seed": 7, "count": 1}
    created = await store.create(
        NewJob(
            jid="0123456789abcdef",
            endpoint_id=harness.emulator.endpoint_id,
            model="default",
            user_id=harness.alice,
            guild_id=harness.guild_id,
            channel_id=harness.channel_id,
            request=request,
        )
    )
    async with harness.running() as bot:
        job = await harness.redis_jobs(created.jid)
        # What the dead process did: Discord created the card, its id never reached Redis.
        await bot.get_partial_messageable(harness.channel_id).send(
            embed=card_embed(job), view=card_view(job), nonce=CARD_NONCE.format(jid=job.jid)
        )
        messages = await harness.wait_for_messages(
            lambda found: cards(found)[0]["embeds"][0]["title"] == "Outcome unknown"
        )
    assert len(cards(messages)) == 1
