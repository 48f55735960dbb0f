"""A busy channel: the bot paces its own Discord requests under per-channel and global budgets, coalesces progress
edits, and sends results and final edits ahead of them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pytest

from runpod_emulator import Scenario
from storage.models import JobState
from tests.e2e.bot.conftest import Harness, answer_text, job_in, job_of, results
from tests.fakes.discord.views import MessageView, VersionView
from tests.plugins.emulator import fast_scenario
from tests.waiting import wait_until

# Jobs at once in one channel, each running RUN_S with STEPS steps of progress, some of which fail (so their cards'
# final edits meet the busy edit bucket).
JOBS = 8
FAILING = 2
RUN_S = 3.0
STEPS = 30
EDIT_INTERVAL_S = 0.5
# Discord's shape on a short window, so that a test sees several windows: an unpaced bot would ask for
# JOBS / EDIT_INTERVAL_S = 16 card edits per second in the channel, four times this budget.
BUDGET = 4
WINDOW_S = 1.0
# Tiny images: the tests measure Discord traffic, not Pillow.
TINY_MODEL = """
[[models]]
name = "tiny"
endpoint_id = "{endpoint_id}"
preset = "sdxl"
default = true
defaults = {{ size = "64x64", steps = {steps}, count = 1 }}
limits = {{ sizes = ["64x64"] }}
"""


@pytest.fixture
def emulator_scenario() -> Scenario:
    """A warm worker for every job, each running RUN_S with progress at every step."""
    return fast_scenario(workers=16, cold_start_s=0, queue_delay_s=0, execution_s=RUN_S, image_size=64, rate_limits={})


def tiny_models(harness: Harness, tmp_path: Path) -> Path:
    models = tmp_path / "models.toml"
    models.write_text(TINY_MODEL.format(endpoint_id=harness.emulator.endpoint_id, steps=STEPS))
    return models


async def run_jobs(harness: Harness, channels: Iterable[int], jobs_per_channel: int, failing: int = 0) -> list[str]:
    """Submit the jobs at once (the first `failing` of each channel fail at their end) and wait until every one is
    delivered; their ids."""
    prompts = [
        (channel, f"busy {channel} {index}" + (" [emulator:fail-plain]" if index < failing else ""))
        for channel in channels
        for index in range(jobs_per_channel)
    ]
    answers = await asyncio.gather(*(harness.imagine(channel_id=channel, prompt=prompt) for channel, prompt in prompts))
    assert all(answer_text(answer).startswith("Submitted") for answer in answers)
    jids = [await harness.jid_of(answer) for answer in answers]

    async def all_delivered() -> bool:
        states = [(await harness.redis_jobs(jid)).state for jid in jids]
        return all(state is JobState.DELIVERED for state in states)

    await wait_until(all_delivered, timeout_s=30)
    return jids


def card_versions(messages: list[MessageView]) -> dict[str, list[VersionView]]:
    """Each job card (deleted ones too) and what it showed, version by version."""
    return {
        jid: list(message["history"])
        for message in messages
        if message["embeds"] and not message["attachments"] and (jid := job_in(message)) is not None
    }


def edit_moments(messages: list[MessageView]) -> list[datetime]:
    """When Discord took each card edit (every version after a card's first)."""
    return sorted(
        datetime.fromisoformat(version["at"])
        for versions in card_versions(messages).values()
        for version in versions[1:]
    )


def crowded(moments: list[datetime], budget: int, window_s: float) -> list[tuple[str, str]]:
    """Stretches shorter than `window_s` that hold more than `budget` of the moments (first and last of each)."""
    return [
        (moments[index].time().isoformat(), moments[index + budget].time().isoformat())
        for index in range(len(moments) - budget)
        if (moments[index + budget] - moments[index]).total_seconds() < window_s
    ]


async def test_card_edits_in_a_busy_channel_stay_within_the_channels_budget(harness: Harness, tmp_path: Path) -> None:
    """Eight live jobs in one channel, each wanting an edit every 0.5 s: no second sees more than four card edits."""
    async with harness.running(
        models_file=tiny_models(harness, tmp_path),
        user_active_jobs=0,
        card_edit_interval_s=EDIT_INTERVAL_S,
        discord_channel_requests=BUDGET,
        discord_channel_window_s=WINDOW_S,
    ):
        await run_jobs(harness, [harness.channel_id], JOBS)
        messages = await harness.everything()
    moments = edit_moments(messages)
    # The channel was busy: its cards were edited more than once each, on average.
    assert len(moments) > JOBS
    assert crowded(moments, BUDGET, WINDOW_S) == []


async def test_every_card_in_a_busy_channel_ends_showing_its_jobs_outcome(harness: Harness, tmp_path: Path) -> None:
    """With the channel's budget short, no final edit is lost: failed jobs' cards say Failed, the others' results
    replaced their cards."""
    async with harness.running(
        models_file=tiny_models(harness, tmp_path),
        user_active_jobs=0,
        card_edit_interval_s=EDIT_INTERVAL_S,
        discord_channel_requests=BUDGET,
        discord_channel_window_s=WINDOW_S,
    ):
        jids = await run_jobs(harness, [harness.channel_id], JOBS, failing=FAILING)
        messages = await harness.everything()
    shown = {jid: versions[-1]["embeds"] for jid, versions in card_versions(messages).items()}
    removed = {job_in(message) for message in messages if message["deleted"]}
    posted = [job_of(message) for message in results(messages)]
    failed, completed = jids[:FAILING], jids[FAILING:]
    assert {jid: shown[jid][0]["title"] for jid in failed} == dict.fromkeys(failed, "Failed")
    assert removed.isdisjoint(failed)
    assert sorted(posted) == sorted(completed)
    assert removed == set(completed)


async def test_no_card_in_a_busy_channel_is_edited_to_what_it_already_shows(harness: Harness, tmp_path: Path) -> None:
    """Coalesced edits never repeat a card's content: every version differs from the one before."""
    async with harness.running(
        models_file=tiny_models(harness, tmp_path),
        user_active_jobs=0,
        card_edit_interval_s=EDIT_INTERVAL_S,
        discord_channel_requests=BUDGET,
        discord_channel_window_s=WINDOW_S,
    ):
        await run_jobs(harness, [harness.channel_id], JOBS, failing=FAILING)
        messages = await harness.everything()
    versions = card_versions(messages)
    repeated = {
        jid: [version["embeds"] for version in shown]
        for jid, shown in versions.items()
        if any(
            (before["embeds"], before["components"]) == (after["embeds"], after["components"])
            for before, after in itertools.pairwise(shown)
        )
    }
    assert sum(len(shown) - 1 for shown in versions.values()) > JOBS
    assert repeated == {}


async def test_the_notifiers_requests_across_channels_stay_within_the_global_budget(
    harness: Harness, tmp_path: Path
) -> None:
    """Three busy channels, each with room for four requests a second: together they never exceed the bot's five."""
    channels = [harness.channel_id]
    for index in range(2):
        channels.append((await harness.fake.create_channel(harness.guild_id, f"busy-{index}"))["id"])
    overall = 5
    async with harness.running(
        models_file=tiny_models(harness, tmp_path),
        user_active_jobs=0,
        card_edit_interval_s=EDIT_INTERVAL_S,
        discord_channel_requests=BUDGET,
        discord_channel_window_s=WINDOW_S,
        discord_requests_per_s=overall,
    ):
        await run_jobs(harness, channels, 2)
        messages = [
            message
            for channel in channels
            for message in await harness.fake.channel_messages(channel, include_deleted=True)
        ]
        requests = await harness.fake.requests()
    # What the notifier sent: card edits, result posts and card deletions (the cards were posted by the command).
    moments = edit_moments(messages)
    moments += [datetime.fromisoformat(message["created_at"]) for message in results(messages)]
    moments += [datetime.fromisoformat(request["at"]) for request in requests if request["method"] == "DELETE"]
    moments.sort()
    assert len(moments) > 3 * overall
    assert crowded(moments, overall, 1.0) == []


# Discord's limits in the fake: a channel takes DISCORD_EDITS card edits per DISCORD_EDIT_WINDOW_S (Discord's numbers),
# and message creates (counted apart, but given the same bucket hash, so discord.py queues both in one line) on a short
# window, so that the cards go up at once.
DISCORD_EDITS = 5
DISCORD_EDIT_WINDOW_S = 5.0
DISCORD_CREATES = (5, 1.0)
# Live jobs that keep running (a step a second) while one more finishes RUN_BEFORE_FINISH_S after it started.
LONG_JOBS = 8
LONG_RUN_S = 30.0
RUN_BEFORE_FINISH_S = 4.0
# Without pacing the cards ask for LONG_JOBS edits a second where Discord takes one, so by then each card has an edit
# queued in discord.py's bucket (one per card: a card's next edit waits for its last), and the result, a message
# create in the same client bucket, waits behind them: up to a second each.
UNPACED_WAIT_S = LONG_JOBS / (DISCORD_EDITS / DISCORD_EDIT_WINDOW_S)
# Paced, the result waits for no edit: seeing the finish (a running job is polled every 0.3 s at most), fetching the
# image, one post and one deletion. A third of the unpaced wait leaves room for a slow machine.
PROMPT_S = UNPACED_WAIT_S / 3


async def test_a_job_finishing_in_a_busy_channel_has_its_result_posted_and_card_removed_promptly(
    harness: Harness, tmp_path: Path
) -> None:
    """Under Discord's limits, with eight live cards wanting edits, a finished job's result is up and its card gone
    within a third of the time the queued progress edits would have held it (the default budgets)."""
    await harness.fake.set_rate_limits(
        overrides={"message_edit": (DISCORD_EDITS, DISCORD_EDIT_WINDOW_S), "message_create": DISCORD_CREATES}
    )
    harness.emulator.update_scenario(execution_s=LONG_RUN_S)
    async with harness.running(
        models_file=tiny_models(harness, tmp_path),
        user_active_jobs=0,
        card_edit_interval_s=EDIT_INTERVAL_S,
    ):
        await asyncio.gather(*(harness.imagine(prompt=f"long {index}") for index in range(LONG_JOBS)))
        harness.emulator.update_scenario(execution_s=RUN_BEFORE_FINISH_S)
        jid = await harness.jid_of(await harness.imagine(prompt="the one that finishes"))
        card_id = (await harness.redis_jobs(jid)).card_message_id

        async def delivered() -> bool:
            return (await harness.redis_jobs(jid)).state is JobState.DELIVERED

        await wait_until(delivered, timeout_s=RUN_BEFORE_FINISH_S + 2 * UNPACED_WAIT_S)
        job = await harness.redis_jobs(jid)
        (result,) = [message for message in results(await harness.messages()) if job_of(message) == jid]
        (deletion,) = [
            request
            for request in await harness.fake.requests()
            if request["method"] == "DELETE" and request["path"].endswith(f"/messages/{card_id}")
        ]
    finished = harness.emulator.counters.terminal[job.runpod_id or ""]["epoch"]
    posted_after = datetime.fromisoformat(result["created_at"]).timestamp() - finished
    removed_after = datetime.fromisoformat(deletion["at"]).timestamp() - finished
    assert posted_after < PROMPT_S, (
        f"result up {posted_after:.2f} s after RunPod finished (unpaced: {UNPACED_WAIT_S} s)"
    )
    assert removed_after < PROMPT_S, f"card gone {removed_after:.2f} s after RunPod finished"


async def test_a_busy_channel_under_discords_limits_draws_no_429_from_the_notifier(
    harness: Harness, tmp_path: Path
) -> None:
    """With Discord's limits on (short windows), eight live cards and their results get no 429: the bot waits its
    turn instead of being throttled."""
    await harness.fake.set_rate_limits(
        overrides={"message_edit": (DISCORD_EDITS, WINDOW_S), "message_create": (DISCORD_EDITS, WINDOW_S)}
    )
    async with harness.running(
        models_file=tiny_models(harness, tmp_path),
        user_active_jobs=0,
        card_edit_interval_s=EDIT_INTERVAL_S,
        discord_channel_requests=BUDGET,
        discord_channel_window_s=WINDOW_S,
    ):
        await run_jobs(harness, [harness.channel_id], JOBS, failing=FAILING)
        stats = await harness.fake.rate_limit_stats()
    # The buckets only the notifier uses (the cards themselves are posted by the command, in message_create).
    paced = {name: stats["by_bucket"][name] for name in ("message_edit", "message_delete_new")}
    assert paced["message_edit"]["requests"] > JOBS
    assert {name: bucket["limited"] for name, bucket in paced.items()} == dict.fromkeys(paced, 0)
    assert stats["limited_global"] == 0
