"""Process roles: a gateway that takes commands and pollers that deliver through REST, sharing one Redis."""

from __future__ import annotations

import asyncio

from cogs.jobs_ui import card_view
from cogs.render import card_embed
from jobs.notifier import JobResult
from runpod_bot.core import Role
from storage.models import JobState
from storage.store import JobStore, NewJob
from tests.e2e.bot.conftest import Harness, cards, delivered, job_of, results
from tests.fakes.discord.views import MessageView


async def test_gateway_takes_commands_and_a_poller_delivers(harness: Harness) -> None:
    """With a gateway-only bot and a poller-only bot, the job is submitted by one and delivered by the other."""
    async with harness.running(Role.GATEWAY) as gateway, harness.running(Role.POLLER) as poller:
        assert gateway.poller is None
        assert poller.poller is not None
        await harness.imagine(prompt="split roles")
        messages = await harness.wait_for_messages(delivered)
        sessions = await harness.fake.sessions()
    assert len(results(messages)) == 1
    assert cards(messages) == []
    assert len(sessions) == 1


async def test_two_pollers_deliver_each_job_once(harness: Harness) -> None:
    """Ten jobs with one gateway and two pollers: ten results, none twice."""
    async with (
        harness.running(Role.GATEWAY),
        harness.running(Role.POLLER),
        harness.running(Role.POLLER),
    ):
        for index in range(10):
            await harness.imagine(user_id=harness.alice if index % 2 else harness.bob, prompt=f"picture {index}")
        messages = await harness.wait_for_messages(lambda found: len(results(found)) >= 10, timeout_s=40)
    assert len(results(messages)) == 10
    assert len({job_of(message) for message in results(messages)}) == 10


async def test_late_progress_edit_from_another_process_does_not_hide_the_outcome(harness: Harness) -> None:
    """A progress edit that reaches Discord after another process showed the outcome is followed by the outcome."""
    store = JobStore(harness.redis)
    request = {"prompt": "two processes", "width": 1024, "height": 1024, "steps": 10, "seed": 3, "count": 1}
    # An endpoint no bot polls: the test moves the job itself, as the other process would.
    new = NewJob(
        jid="00112233445566aa",
        endpoint_id="not-polled",
        model="default",
        user_id=harness.alice,
        guild_id=harness.guild_id,
        channel_id=harness.channel_id,
        request=request,
    )
    await store.create(new)
    async with harness.running(Role.POLLER) as slow, harness.running(Role.POLLER) as fast:
        job = await harness.redis_jobs(new.jid)
        card = await slow.get_partial_messageable(harness.channel_id).send(embed=card_embed(job), view=card_view(job))
        await store.update(job.jid, {"card_message_id": card.id})
        await store.attach_runpod_id(await harness.redis_jobs(job.jid), "runpod-1", 0)
        running = (await harness.redis_jobs(job.jid)).model_copy(update={"state": JobState.RUNNING, "progress": "3/10"})
        # The slow process's progress edit meets a rate limit and goes out again a second later...
        await harness.fake.inject_rate_limit(method="PATCH", path=rf"/messages/{card.id}$", retry_after=1.0)
        edit = asyncio.create_task(slow.notifier.job_updated(running))
        await harness.fake.wait_for_requests(lambda request: request["status"] == 429, what="the limited edit")
        # ...after the other process finished the job and showed it on the card.
        (claimed,) = (await store.claim_due("not-polled", limit=1, lease_ms=30_000)).jobs
        delivering = await store.finalize_begin(claimed, JobState.FAILED, lease_ms=60_000, fields={"error": "OOM"})
        assert delivering is not None
        await fast.notifier.job_finished(delivering.job, JobResult(JobState.FAILED, reason="OOM"))
        await store.finalize_commit(delivering)
        await edit
        # The progress edit is sent in its turn, not within `job_updated`: wait until it has landed.
        shown = await harness.fake.wait_for_message(card.id, outcome_shown_after_late_edit, what="the late edit")
    assert shown["embeds"][0]["title"] == "Failed"


def outcome_shown_after_late_edit(message: MessageView) -> bool:
    """The card showed the outcome, then the late progress edit, then the outcome again."""
    titles = [version["embeds"][0]["title"] for version in message["history"] if version["embeds"]]
    if "Failed" not in titles:
        return False
    after_outcome = titles[titles.index("Failed") :]
    return any(title != "Failed" for title in after_outcome) and titles[-1] == "Failed"


async def test_closing_process_lets_its_late_progress_edit_be_followed_by_the_outcome(harness: Harness) -> None:
    """A process that stops while its progress edit, landed after another process showed the outcome, awaits its
    reply still shows the outcome again before it closes: the card never stays on a live state."""
    store = JobStore(harness.redis)
    request = {"prompt": "a stopping process", "width": 1024, "height": 1024, "steps": 10, "seed": 4, "count": 1}
    new = NewJob(
        jid="00112233445566bb",
        endpoint_id="not-polled",
        model="default",
        user_id=harness.alice,
        guild_id=harness.guild_id,
        channel_id=harness.channel_id,
        request=request,
    )
    await store.create(new)
    async with harness.running(Role.POLLER) as stopping, harness.running(Role.POLLER) as other:
        job = await harness.redis_jobs(new.jid)
        card = await stopping.get_partial_messageable(harness.channel_id).send(
            embed=card_embed(job), view=card_view(job)
        )
        await store.update(job.jid, {"card_message_id": card.id})
        await store.attach_runpod_id(await harness.redis_jobs(job.jid), "runpod-1", 0)
        queued = await harness.redis_jobs(job.jid)
        await stopping.notifier.job_updated(queued)
        # The next progress edit waits for its turn (edits are coalesced), then meets a rate limit...
        await harness.fake.inject_rate_limit(method="PATCH", path=rf"/messages/{card.id}$", retry_after=1.0)
        running = queued.model_copy(update={"state": JobState.RUNNING, "progress": "3/10"})
        await stopping.notifier.job_updated(running)
        await harness.fake.wait_for_requests(lambda request: request["status"] == 429, what="the limited edit")
        # ...while the other process finishes the job and shows it on the card; the edit then lands after that.
        (claimed,) = (await store.claim_due("not-polled", limit=1, lease_ms=30_000)).jobs
        delivering = await store.finalize_begin(claimed, JobState.FAILED, lease_ms=60_000, fields={"error": "OOM"})
        assert delivering is not None
        await other.notifier.job_finished(delivering.job, JobResult(JobState.FAILED, reason="OOM"))
        await store.finalize_commit(delivering)
        await harness.fake.inject_delay(seconds=1.0, method="PATCH", path=rf"/messages/{card.id}$")

        async def landed() -> bool | None:
            return True if await harness.fake.held_requests() else None

        await harness.fake.wait_for(landed, what="the late edit landed")
        assert (await harness.fake.message(card.id))["embeds"][0]["title"].startswith("Generating")
        # The process stops while the late edit's reply is on its way.
        await stopping.notifier.close()
    assert (await harness.fake.message(card.id))["embeds"][0]["title"] == "Failed"


async def test_gateway_forgets_the_cards_it_no_longer_edits(harness: Harness) -> None:
    """A gateway, which never sees a job finish, forgets a card's edit state once it has not edited it for a while."""
    async with harness.running(Role.GATEWAY) as gateway, harness.running(Role.POLLER):
        gateway.notifier.forget_after_s = 0.5
        for index in range(6):
            await harness.imagine(user_id=harness.alice if index % 2 else harness.bob, prompt=f"remembered {index}")
        await harness.wait_for_messages(lambda found: len(results(found)) >= 6, timeout_s=30)
        # Every card's last edit by the gateway is now older than that.
        await asyncio.sleep(gateway.notifier.forget_after_s + 0.1)
        await harness.imagine(prompt="the only one left")
        tracked = gateway.notifier.cards_tracked
    assert tracked == 1
