"""GPU-time budgets through the real bot: a job that does not fit is refused with what is left and when it resets; a
job's end settles its reservation (the real figure; nothing for one cancelled before it started); a server's own
lower budget applies, and one above the operator's cap is refused naming the cap."""

from __future__ import annotations

from storage.models import JobState
from tests.e2e.bot.conftest import Harness, answer_text
from tests.e2e.bot.test_usage import read, usage
from tests.waiting import wait_until

# With no run time on record, a one-image job is estimated at the store's default (30 s).
ESTIMATE_S = 30


async def imagine_text(harness: Harness, user_id: int | None = None) -> str:
    """What the member reads after a one-image /imagine."""
    return answer_text(await harness.imagine(user_id=user_id, count=1))


async def ended(harness: Harness, jid: str) -> None:
    async def delivered() -> bool:
        return (await harness.redis_jobs(jid)).state is JobState.DELIVERED

    await wait_until(delivered)


async def test_a_job_beyond_the_members_daily_budget_is_refused_with_what_is_left_and_when_it_resets(
    harness: Harness,
) -> None:
    """With a 30 s daily budget, Alice's second job while the first runs is refused: 0 of 30 s left, resets at
    midnight UTC."""
    harness.emulator.update_scenario(execution_s=20.0)
    async with harness.running(member_daily_gpu_s=ESTIMATE_S):
        first = await imagine_text(harness)
        refused = await imagine_text(harness)
    assert "Your GPU budget today" not in first
    assert "Your GPU budget today is used up: 0 of 30 s left; it resets at 00:00 UTC (in " in refused, refused


async def test_a_finished_job_counts_its_real_gpu_time_not_its_estimate(harness: Harness) -> None:
    """A job that ran about a second gives back the rest of its 30 s estimate: a second job fits a 45 s budget."""
    harness.emulator.update_scenario(execution_s=1.0)
    async with harness.running(member_daily_gpu_s=45):
        first = await harness.imagine(count=1)
        await ended(harness, await harness.jid_of(first))
        second = await imagine_text(harness)
    assert "GPU budget" not in second, second
    assert "discord.com/channels" in second, second


async def test_a_job_cancelled_before_it_started_gives_its_reservation_back(harness: Harness) -> None:
    """One worker busy: Alice's queued job, cancelled, costs nothing, so a third job fits a 65 s budget."""
    harness.emulator.update_scenario(execution_s=30.0, workers=1)
    async with harness.running(member_daily_gpu_s=65):
        running = await harness.jid_of(await harness.imagine(count=1))

        async def started() -> bool:
            return (await harness.redis_jobs(running)).started_at is not None

        await wait_until(started)
        queued = await harness.jid_of(await harness.imagine(count=1))
        refused = await imagine_text(harness)
        cancel = await harness.fake.invoke_command(harness.channel_id, harness.alice, "cancel", {"job": queued})
        await harness.answered(cancel)
        await ended(harness, queued)
        admitted = await imagine_text(harness)
    assert "Your GPU budget today has 5 s of 65 s left, and this job needs about 30 s" in refused, refused
    assert "GPU budget" not in admitted, admitted


async def test_a_servers_lower_budget_applies_to_its_members(harness: Harness) -> None:
    """The operator sets no budget; the server's /settings budget of 30 s a day refuses Alice's second job."""
    harness.emulator.update_scenario(execution_s=20.0)
    async with harness.running():
        changed = await harness.fake.invoke_command(
            harness.channel_id, harness.mod, "settings budget", {"member_daily": ESTIMATE_S}
        )
        said = answer_text(await harness.answered(changed))
        await imagine_text(harness)
        refused = await imagine_text(harness)
    assert "GPU per member per day no budget → 30 s" in said, said
    assert "Your GPU budget today is used up: 0 of 30 s left" in refused, refused


async def test_a_server_cannot_set_a_budget_above_the_operators_cap(harness: Harness) -> None:
    """A server asking for 200 s a day under a 100 s cap is refused, naming the cap and what is allowed."""
    async with harness.running(member_daily_gpu_s=100):
        changed = await harness.fake.invoke_command(
            harness.channel_id, harness.mod, "settings budget", {"member_daily": 200}
        )
        said = answer_text(await harness.answered(changed))
    refusal = "Not changed: GPU budget per member per day: 200 s is above the bot's cap of 100 s. Allowed: 1 to 100 s."
    assert refusal in said, said


async def test_usage_me_shows_the_budget_what_is_used_and_what_is_left(harness: Harness) -> None:
    """After a job, /usage me shows Alice her daily budget: the job's real GPU time used, the rest left, the reset."""
    harness.emulator.update_scenario(execution_s=1.0)
    async with harness.running(member_daily_gpu_s=100):
        jid = await harness.jid_of(await harness.imagine(count=1))
        await ended(harness, jid)
        shown = read(await usage(harness, harness.alice))
    gpu_ms = (await harness.redis_jobs(jid)).execution_time_ms
    assert gpu_ms is not None
    used_s = gpu_ms // 1000
    line = f"Your GPU time today: {used_s} s of 100 s used, {(100_000 - gpu_ms) // 1000} s left; resets at 00:00 UTC"
    assert line in shown, shown
