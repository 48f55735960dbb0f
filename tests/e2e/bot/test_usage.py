"""/usage through the real bot: what a member, a moderator, another server's moderator and the operator read of the GPU
time RunPod (the emulator) reported for the jobs, and what each of them is refused."""

from __future__ import annotations

from pathlib import Path

from cogs.usage import duration
from jobs.prices import format_money
from storage.models import JobState
from tests.e2e.bot.conftest import Harness, OtherGuild, answer_text, delivered, final_message, is_ephemeral, results
from tests.fakes.discord.views import InteractionView, MessageView
from tests.waiting import wait_until


def embed_text(message: MessageView) -> str:
    """Everything a member reads in a message's embeds."""
    parts: list[str] = []
    for embed in message["embeds"]:
        parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
        parts += [f"{field['name']}: {field['value']}" for field in embed.get("fields", [])]
    return "\n".join(parts)


async def usage(harness: Harness, user_id: int, view: str = "me", channel_id: int | None = None) -> InteractionView:
    """`/usage <view>` typed by `user_id` (in #general unless told), once answered."""
    interaction = await harness.fake.invoke_command(channel_id or harness.channel_id, user_id, f"usage {view}", {})
    return await harness.answered(interaction)


def read(answer: InteractionView) -> str:
    """What the member read: the text, or the embed the answer carries."""
    message = final_message(answer) if answer["followups"] or answer["original_message"] else None
    if message is not None and message["embeds"]:
        return embed_text(message)
    return answer_text(answer)


async def gpu_ms_of_jobs(harness: Harness, count: int) -> list[int]:
    """The executionTime RunPod reported for each of the first `count` jobs the bot sent, once all have ended."""
    reported: list[int] = []

    async def ended() -> bool:
        nonlocal reported
        runpod_ids = list(harness.emulator.counters.terminal)
        views = [harness.emulator.job(runpod_id) for runpod_id in runpod_ids]
        reported = [view["executionTime"] for view in views if view is not None and "executionTime" in view]
        return len(runpod_ids) >= count

    await wait_until(ended)
    return reported


async def a_delivered_job(harness: Harness, user_id: int, channel_id: int | None = None) -> None:
    channel_id = channel_id or harness.channel_id
    before = len(results(await harness.fake.channel_messages(channel_id)))
    await harness.imagine(user_id=user_id, channel_id=channel_id)

    async def posted() -> bool:
        found = await harness.fake.channel_messages(channel_id)
        return delivered(found) and len(results(found)) > before

    await wait_until(posted)


async def test_a_member_reads_the_gpu_time_of_their_job_today_and_this_month(harness: Harness) -> None:
    """After one job, /usage me shows Alice its GPU time, today and this month, here and everywhere, privately."""
    harness.emulator.update_scenario(execution_s=1.3)
    async with harness.running():
        await a_delivered_job(harness, harness.alice)
        (gpu_ms,) = await gpu_ms_of_jobs(harness, 1)
        answer = await usage(harness, harness.alice)
    text = read(answer)
    line = f"{duration(gpu_ms)} of GPU time, 1 job"
    assert is_ephemeral(answer)
    assert text.count(line) == 4, text
    assert "Today (UTC)" in text
    assert "This month (" in text
    assert "Jobs at once: 0 running of 5 allowed" in text
    assert "No GPU-time budget is set." in text


async def test_a_member_with_no_jobs_reads_that_nothing_was_used(harness: Harness) -> None:
    """Bob, who ran nothing, reads "nothing yet", not Alice's numbers."""
    async with harness.running():
        await a_delivered_job(harness, harness.alice)
        answer = await usage(harness, harness.bob)
    text = read(answer)
    assert "GPU time, 1 job" not in text
    assert "nothing yet" in text


async def test_the_cost_is_shown_for_a_priced_model(harness: Harness, tmp_path: Path) -> None:
    """With a price in models.toml, the member reads what the job cost as well as its seconds."""
    models = tmp_path / "models.toml"
    models.write_text(
        f'[[models]]\nname = "xl"\nendpoint_id = "{harness.emulator.endpoint_id}"\npreset = "sdxl"\n'
        'price_per_gpu_hour = 3.6\ncurrency = "EUR"\n'
    )
    async with harness.running(models_file=models):
        await a_delivered_job(harness, harness.alice)
        (gpu_ms,) = await gpu_ms_of_jobs(harness, 1)
        text = read(await usage(harness, harness.alice))
    # 3.6 an hour is 0.001 a second: a millionth per GPU millisecond.
    assert f"{duration(gpu_ms)} of GPU time, 1 job, {format_money(gpu_ms, 'EUR')}" in text


async def test_a_moderator_reads_the_servers_totals_by_model_and_its_top_members(harness: Harness) -> None:
    """The moderator's /usage server shows the server's two jobs, by model, and Alice and Bob ranked, mentioned
    without a ping."""
    async with harness.running():
        await a_delivered_job(harness, harness.alice)
        await a_delivered_job(harness, harness.bob)
        gpu_ms = await gpu_ms_of_jobs(harness, 2)
        answer = await usage(harness, harness.mod, "server")
    text = read(answer)
    assert is_ephemeral(answer)
    assert f"{duration(sum(gpu_ms))} of GPU time, 2 jobs" in text
    assert "**default**: " in text
    assert f"<@{harness.alice}>: " in text
    assert f"<@{harness.bob}>: " in text
    assert not final_message(answer)["pinged_anyone"]


async def test_a_member_is_refused_the_servers_usage(harness: Harness) -> None:
    """Alice is no moderator: /usage server says who may see it and what she may see."""
    async with harness.running():
        answer = await usage(harness, harness.alice, "server")
    text = answer_text(answer)
    assert "Only this server's moderators can see its usage" in text
    assert "/usage me" in text


async def bob_owns_another_server(harness: Harness) -> OtherGuild:
    return await harness.other_guild(owner_id=harness.bob)


async def test_another_servers_moderator_sees_only_their_own_servers_usage(harness: Harness) -> None:
    """Bob moderates his own server: there he sees only its job (his), never Art Club's; in Art Club, where he is a
    plain member, he is refused; Art Club's moderator never sees Bob's server's job."""
    other = await bob_owns_another_server(harness)
    async with harness.running():
        await a_delivered_job(harness, harness.alice)
        await a_delivered_job(harness, harness.alice)
        await a_delivered_job(harness, harness.bob, channel_id=other.channel_id)
        await gpu_ms_of_jobs(harness, 3)
        in_his_server = read(await usage(harness, harness.bob, "server", other.channel_id))
        in_art_club = answer_text(await usage(harness, harness.bob, "server"))
        art_club_mod = read(await usage(harness, harness.mod, "server"))
    assert "GPU time, 1 job" in in_his_server
    assert f"<@{harness.bob}>" in in_his_server
    assert f"<@{harness.alice}>" not in in_his_server
    assert "Only this server's moderators" in in_art_club
    assert "GPU time, 2 jobs" in art_club_mod
    assert f"<@{harness.bob}>" not in art_club_mod


async def test_a_members_view_in_another_server_shows_their_use_there_apart(harness: Harness) -> None:
    """Bob's /usage me in his own server counts his job everywhere, and nothing in that server's line for Art Club's
    jobs (he ran one in Art Club, none in his own)."""
    other = await bob_owns_another_server(harness)
    async with harness.running():
        await a_delivered_job(harness, harness.bob)
        await gpu_ms_of_jobs(harness, 1)
        text = read(await usage(harness, harness.bob, "me", other.channel_id))
    assert "GPU time, 1 job" in text
    assert "In this server: nothing yet" in text


async def test_the_operator_reads_every_servers_usage_and_a_moderator_does_not(harness: Harness) -> None:
    """/usage all lists both servers for the operator; the moderator is refused it."""
    other = await bob_owns_another_server(harness)
    olive = (await harness.fake.create_member(harness.guild_id, "olive"))["user_id"]
    async with harness.running(bot_owner_ids=str(olive)):
        await a_delivered_job(harness, harness.alice)
        await a_delivered_job(harness, harness.bob, channel_id=other.channel_id)
        await gpu_ms_of_jobs(harness, 2)
        operator = read(await usage(harness, olive, "all"))
        moderator = answer_text(await usage(harness, harness.mod, "all"))
    assert f"Art Club (`{harness.guild_id}`)" in operator
    assert f"Other Club (`{other.guild_id}`)" in operator
    assert "GPU time, 2 jobs" in operator
    assert "Only the bot's operator" in moderator


async def test_a_job_cancelled_while_running_is_counted_and_one_cancelled_while_queued_is_not(
    harness: Harness,
) -> None:
    """Alice cancels a job a worker is running (billed: counted), then one no worker started (free: not counted)."""
    harness.emulator.update_scenario(execution_s=30.0, workers=1)
    async with harness.running():
        running = await harness.jid_of(await harness.imagine(user_id=harness.alice))

        async def started() -> bool:
            return (await harness.redis_jobs(running)).started_at is not None

        await wait_until(started)
        queued = await harness.jid_of(await harness.imagine(user_id=harness.alice))
        for jid in (running, queued):
            interaction = await harness.fake.invoke_command(harness.channel_id, harness.alice, "cancel", {"job": jid})
            await harness.answered(interaction)

        async def both_ended() -> bool:
            states = [(await harness.redis_jobs(jid)).state for jid in (running, queued)]
            return states == [JobState.DELIVERED, JobState.DELIVERED]

        await wait_until(both_ended)
        (gpu_ms,) = await gpu_ms_of_jobs(harness, 2)
        text = read(await usage(harness, harness.alice))
    assert 0 < gpu_ms < 30_000
    assert f"{duration(gpu_ms)} of GPU time, 1 job" in text


async def test_usage_shows_the_servers_own_limits_where_the_member_asks(harness: Harness) -> None:
    """A server's /settings limits (stricter than the operator's) are the ones /usage me shows in that server."""
    async with harness.running():
        changed = await harness.fake.invoke_command(
            harness.channel_id, harness.mod, "settings limits", {"member_jobs": 2, "cooldown": 42}
        )
        await harness.answered(changed)
        shown = read(await usage(harness, harness.alice))
    assert "Your jobs at once in this server: 2" in shown
    assert "Cooldown between jobs in this server: 42 s" in shown
