"""Load through the real bot, on a Redis client built the way production builds it: in a burst of commands every member
gets an answer, every accepted job reaches RunPod once and is delivered once; a submit that cannot get a turn in time
is refused as busy and starts nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter
from pathlib import Path

import pytest

from runpod_emulator import Scenario
from storage.connection import open_redis
from storage.models import JobState
from storage.store import JobStore
from tests.chaos.audit import is_wait_note
from tests.e2e.bot.conftest import Harness, answer_text, cards, job_of, results
from tests.plugins.emulator import fast_scenario
from tests.waiting import wait_until

BURST = 500
MEMBERS = 10
# What a member reads when the bot could not take the request in time (nothing was started).
BUSY = "very busy"
SUBMITTED = re.compile(r"^Submitted — https://discord\.com/channels/\d+/\d+/(?P<card>\d+)$")
# Tiny images and a one-step model: the test measures the bot's plumbing, not Pillow.
TINY_MODEL = """
[[models]]
name = "tiny"
endpoint_id = "{endpoint_id}"
preset = "sdxl"
default = true
defaults = {{ size = "64x64", steps = 1, count = 1 }}
limits = {{ sizes = ["64x64"] }}
"""


@pytest.fixture
def emulator_scenario() -> Scenario:
    """Many warm workers, jobs that take a few milliseconds, and no RunPod rate limits to wait out."""
    return fast_scenario(
        workers=64, cold_start_s=0, queue_delay_s=0, execution_s=0.01, steps=1, image_size=64, rate_limits={}
    )


@pytest.mark.serial
async def test_a_burst_of_500_imagine_gets_every_member_a_card_or_a_clear_refusal(
    harness: Harness, redis_url: str, tmp_path: Path
) -> None:
    """500 /imagine at once: each member reads a card link or a clear refusal; each accepted job runs and posts once."""
    models = tmp_path / "models.toml"
    models.write_text(TINY_MODEL.format(endpoint_id=harness.emulator.endpoint_id))
    members = [harness.alice, harness.bob]
    for index in range(MEMBERS - len(members)):
        members.append((await harness.fake.create_member(harness.guild_id, f"member{index}"))["user_id"])
    prompts = [f"burst {index}" for index in range(BURST)]
    # As `bot.run` opens it (REDIS_MAX_CONNECTIONS at its default), not the suite's own client.
    async with open_redis(redis_url, data_dir=tmp_path) as redis:
        harness = dataclasses.replace(harness, redis=redis)
        async with harness.running(
            models_file=models,
            user_cooldown_s=0,
            user_active_jobs=0,
            guild_active_jobs=0,
            status_budget_per_s=400,
            card_edit_interval_s=60,
            # The fake here enforces no rate limits, and this test is about admission: room for 500 results at once
            # (Discord's own budget would post them over minutes; tests/e2e/bot/test_pacing.py checks the pacing).
            discord_channel_requests=BURST,
            discord_channel_window_s=0.1,
            discord_requests_per_s=10 * BURST,
        ):
            interactions = await asyncio.gather(
                *(
                    harness.fake.invoke_command(
                        harness.channel_id, members[index % MEMBERS], "imagine", {"prompt": prompt}
                    )
                    for index, prompt in enumerate(prompts)
                )
            )
            texts = [answer_text(await harness.answered(interaction)) for interaction in interactions]
            accepted = {
                job_of(await harness.fake.message(int(match["card"]))): prompt
                for prompt, text in zip(prompts, texts, strict=True)
                if (match := SUBMITTED.match(text))
            }
            unclear = Counter(text for text in texts if not SUBMITTED.match(text) and BUSY not in text)
            assert unclear == Counter(), f"{sum(unclear.values())} of {BURST} members got no clear answer"
            store = JobStore(redis)

            async def all_delivered() -> bool:
                jobs = [await store.get(jid) for jid in accepted]
                return all(job is not None and job.state is JobState.DELIVERED for job in jobs)

            await wait_until(all_delivered, timeout_s=60)
            jobs = [job for jid in accepted if (job := await store.get(jid)) is not None]
        messages = await harness.messages()
    assert accepted
    assert {job.jid: job.final_state for job in jobs} == dict.fromkeys(accepted, JobState.COMPLETED)
    sent = {job.jid: harness.emulator.engine.job(job.runpod_id or "") for job in jobs}
    assert {jid: emulated.input["prompt"] for jid, emulated in sent.items() if emulated is not None} == accepted
    assert harness.emulator.counters.request_count("run") == len(accepted)
    assert Counter(job_of(message) for message in results(messages)) == Counter(accepted.keys())


async def test_a_submit_that_waits_too_long_for_its_turn_is_refused_as_busy(harness: Harness) -> None:
    """With the only submit slot held past SUBMIT_WAIT_S, /imagine says the bot is busy and starts nothing."""
    harness.emulator.update_scenario(slow_reply_s=2.0)
    harness.emulator.script_faults("run", "slow")
    async with harness.running(submit_concurrency=1, submit_wait_s=0.1):
        held = await harness.fake.invoke_command(harness.channel_id, harness.alice, "imagine", {"prompt": "held"})
        await wait_until(lambda: harness.emulator.counters.request_count("run") == 1)
        refused = answer_text(await harness.imagine(user_id=harness.bob, prompt="refused"))
        submitted = answer_text(await harness.answered(held))
        messages = await harness.messages()
    assert BUSY in refused, refused
    assert "Nothing was started" in refused, refused
    assert SUBMITTED.match(submitted), submitted
    assert len(cards(messages)) == 1
    assert harness.emulator.counters.request_count("run") == 1


# Cards in one channel under Discord's limits: 2 per second, so BURST_IN_ONE_CHANNEL cards take seconds to post.
# The bot's budget is one number per route and channel, so the card edits that follow each /run get the same limit
# (Discord's own 5 per 5 s would let the bot's 2 per second draw a 429 that is the test's, not the bot's).
CARD_CREATES = (2, 1.0)
BURST_IN_ONE_CHANNEL = 8


async def test_a_burst_in_one_channel_is_not_refused_while_its_cards_wait_for_discord(harness: Harness) -> None:
    """Eight /imagine at once in one channel under Discord's post limit, with one submit slot waited for 1 s: each
    card waits its turn to be posted without holding the slot, so every member's job is accepted and sent once."""
    await harness.fake.set_rate_limits(overrides={"message_create": CARD_CREATES, "message_edit": CARD_CREATES})
    # RunPod takes the jobs and keeps them queued: no result is posted meanwhile.
    harness.emulator.update_scenario(workers=0)
    async with harness.running(
        submit_concurrency=1,
        submit_wait_s=1.0,
        user_active_jobs=0,
        user_cooldown_s=0,
        discord_channel_requests=CARD_CREATES[0],
        discord_channel_window_s=CARD_CREATES[1],
    ):
        answers = await asyncio.gather(
            *(harness.imagine(prompt=f"burst {index}") for index in range(BURST_IN_ONE_CHANNEL))
        )
    texts = [answer_text(answer) for answer in answers]
    assert [text for text in texts if not SUBMITTED.match(text)] == []
    assert harness.emulator.counters.request_count("run") == BURST_IN_ONE_CHANNEL
    stats = await harness.fake.rate_limit_stats()
    assert stats["limited"] == 0, {name: counts for name, counts in stats["by_bucket"].items() if counts["limited"]}


# A channel where Discord lets the bot post one message every 2 s: the third card of three waits 4 s, past the 3 s
# after which its member is told why (CARD_WAIT_NOTE_S).
SLOW_CHANNEL = (1, 2.0)
SLOW_BURST = 3


# Alone (serial): the answers come seconds apart by design, and a loaded machine must not push them past the wait.
@pytest.mark.serial
async def test_a_member_whose_card_waits_in_a_busy_channel_reads_why_until_the_answer_takes_its_place(
    harness: Harness,
) -> None:
    """Three /imagine at once where cards go up one per 2 s: the member whose card waits past 3 s reads that it
    waits its turn (Discord's pace in a channel, how many posts wait), and then the answer replaces that note."""
    await harness.fake.set_rate_limits(overrides={"message_create": SLOW_CHANNEL, "message_edit": SLOW_CHANNEL})
    harness.emulator.update_scenario(workers=0)
    async with harness.running(
        user_active_jobs=0,
        user_cooldown_s=0,
        discord_channel_requests=SLOW_CHANNEL[0],
        discord_channel_window_s=SLOW_CHANNEL[1],
    ):
        answers = await asyncio.gather(*(harness.imagine(prompt=f"slow {index}") for index in range(SLOW_BURST)))
    notes = [
        version["content"]
        for answer in answers
        if answer["original_message"] is not None
        for version in answer["original_message"]["history"]
        if is_wait_note(version["content"])
    ]
    assert notes
    assert all("Discord lets a bot post about one message a second here" in note for note in notes)
    assert all(re.search(r"and \d+ posts? (is|are) waiting", note) for note in notes)
    assert [text for text in map(answer_text, answers) if not SUBMITTED.match(text)] == []
    assert harness.emulator.counters.request_count("run") == SLOW_BURST
