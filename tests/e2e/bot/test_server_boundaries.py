"""Every server is its own world: a moderator's override stops at their own server's jobs, a private job is its
owner's alone, /health shows a server's moderators their server, and the operator may see and do everything."""

from __future__ import annotations

from collections.abc import Callable

from storage.store import JobStore
from tests.e2e.bot.conftest import (
    CARD_LINK,
    Harness,
    OtherGuild,
    answer_text,
    cards,
    delivered,
    final_message,
    job_of,
    results,
)
from tests.fakes.discord.views import InteractionView, MessageView
from tests.waiting import wait_until


def fields_of(message: MessageView) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message["embeds"][0]["fields"]}


def embed_text(message: MessageView) -> str:
    """Everything a member reads in a message's embeds."""
    parts: list[str] = []
    for embed in message["embeds"]:
        parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
        parts += [f"{field['name']}: {field['value']}" for field in embed.get("fields", [])]
    return "\n".join(parts)


async def jid_in(harness: Harness, text: str) -> str:
    """The job an answer links (its card)."""
    match = CARD_LINK.search(text)
    assert match is not None, text
    return job_of(await harness.fake.message(int(match["message_id"])))


async def submitted_jid(harness: Harness, answer: InteractionView) -> str:
    return await jid_in(harness, answer_text(answer))


async def channel_card(
    harness: Harness, channel_id: int, jid: str, check: Callable[[MessageView], bool]
) -> MessageView:
    """The job's card in a channel, once `check` holds for it."""
    found: MessageView | None = None

    async def ready() -> bool:
        nonlocal found
        for message in cards(await harness.fake.channel_messages(channel_id)):
            if job_of(message) == jid and check(message):
                found = message
                return True
        return False

    await wait_until(ready, timeout_s=15)
    assert found is not None
    return found


def titled(title: str) -> Callable[[MessageView], bool]:
    return lambda card: card["embeds"][0]["title"] == title


async def queued_job(harness: Harness, user_id: int, channel_id: int | None = None, **options: object) -> MessageView:
    """Start a job (the emulator has no workers, so it stays queued) and return its card once it shows Queued."""
    channel_id = channel_id or harness.channel_id
    answer = await harness.imagine(user_id=user_id, channel_id=channel_id, **options)
    return await channel_card(harness, channel_id, await submitted_jid(harness, answer), titled("Queued"))


async def cancel(harness: Harness, channel_id: int, user_id: int, jid: str) -> str:
    """/cancel typed by `user_id` in `channel_id`; the bot's answer."""
    interaction = await harness.fake.invoke_command(channel_id, user_id, "cancel", {"job": jid})
    return answer_text(await harness.answered(interaction))


async def click(harness: Harness, message: MessageView, action: str, user_id: int) -> str:
    jid = job_of(message)
    return answer_text(
        await harness.answered(await harness.fake.click_button(message["id"], f"job:{action}:{jid}", user_id))
    )


async def bob_owns_another_server(harness: Harness) -> OtherGuild:
    """Bob, a plain member here, creates a server of his own: he has every permission there."""
    return await harness.other_guild(owner_id=harness.bob)


async def an_operator(harness: Harness) -> int:
    """A plain member of this server whose id is in BOT_OWNER_IDS (given to `harness.running`)."""
    member = await harness.fake.create_member(harness.guild_id, "olive")
    return member["user_id"]


# --- cancelling ------------------------------------------------------------------------------------------------------


async def test_another_servers_moderator_cannot_cancel_by_command(harness: Harness) -> None:
    """A moderator of another server who types the job id in /cancel there is refused; nothing reaches RunPod."""
    harness.emulator.update_scenario(workers=0)
    other = await bob_owns_another_server(harness)
    async with harness.running():
        card = await queued_job(harness, harness.alice)
        jid = job_of(card)
        answer = await cancel(harness, other.channel_id, harness.bob, jid)
        job = await harness.redis_jobs(jid)
        card = await harness.fake.message(card["id"])
    assert "another server" in answer
    assert "its own server" in answer or "their own server" in answer
    assert job.cancel_requested_by is None
    assert card["embeds"][0]["title"] == "Queued"
    assert "Cancelling" not in fields_of(card)
    assert harness.emulator.counters.request_count("cancel") == 0


async def test_moderator_cancels_a_job_of_their_own_server_by_command(harness: Harness) -> None:
    """A moderator of the job's server cancels it with /cancel; the card names them."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        card = await queued_job(harness, harness.alice)
        answer = await cancel(harness, harness.channel_id, harness.mod, job_of(card))
        card = await channel_card(harness, harness.channel_id, job_of(card), titled("Cancelled"))
    assert "Cancelling job" in answer
    assert fields_of(card)["Cancelled by"] == f"<@{harness.mod}>"


async def test_moderator_cannot_cancel_a_private_job(harness: Harness) -> None:
    """A job delivered by direct message belongs to its owner alone: a moderator of its server is refused."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        answer = await harness.imagine(user_id=harness.alice, prompt="a secret garden", private=True)
        jid = await submitted_jid(harness, answer)
        refusal = await cancel(harness, harness.channel_id, harness.mod, jid)
        job = await harness.redis_jobs(jid)
    assert "private" in refusal
    assert "only the member who started it" in refusal
    assert job.cancel_requested_by is None
    assert harness.emulator.counters.request_count("cancel") == 0


async def test_cancel_choices_are_the_jobs_a_moderator_may_cancel(harness: Harness) -> None:
    """A moderator's /cancel choices list their server's public jobs: not a private job, not another server's."""
    harness.emulator.update_scenario(workers=0)
    other = await bob_owns_another_server(harness)
    async with harness.running():
        await harness.imagine(user_id=harness.alice, prompt="a secret garden", private=True)
        await queued_job(harness, harness.alice, prompt="a public dragon")
        await queued_job(harness, harness.bob, channel_id=other.channel_id, prompt="bob's own castle")
        for_mod = await harness.fake.autocomplete_choices(harness.channel_id, harness.mod, "cancel", {"job": ""}, "job")
        for_bob = await harness.fake.autocomplete_choices(other.channel_id, harness.bob, "cancel", {"job": ""}, "job")
    assert [choice["name"] for choice in for_mod] == ["queued · a public dragon"]
    assert [choice["name"] for choice in for_bob] == ["queued · bob's own castle"]


async def test_operator_cancels_another_members_job_with_the_button(harness: Harness) -> None:
    """A user in BOT_OWNER_IDS may cancel any job, even where they are a plain member."""
    harness.emulator.update_scenario(workers=0)
    olive = await an_operator(harness)
    async with harness.running(bot_owner_ids=str(olive)):
        card = await queued_job(harness, harness.alice)
        answer = await click(harness, card, "cancel", olive)
        card = await channel_card(harness, harness.channel_id, job_of(card), titled("Cancelled"))
    assert "Cancelling job" in answer
    assert fields_of(card)["Cancelled by"] == f"<@{olive}>"


async def test_application_owner_cancels_from_the_bots_dm(harness: Harness) -> None:
    """The owner of the bot's application is an operator without any setting: /cancel works for them in a DM."""
    harness.emulator.update_scenario(workers=0)
    owner_id = (await harness.fake.info())["application_owner_id"]
    async with harness.running() as bot:
        card = await queued_job(harness, harness.alice)
        dm = await (await bot.fetch_user(owner_id)).create_dm()
        answer = await cancel(harness, dm.id, owner_id, job_of(card))
        card = await channel_card(harness, harness.channel_id, job_of(card), titled("Cancelled"))
    assert "Cancelling job" in answer
    assert fields_of(card)["Cancelled by"] == f"<@{owner_id}>"


# --- buttons on results and failed jobs ------------------------------------------------------------------------------


async def test_result_delete_is_refused_to_another_servers_moderator(harness: Harness) -> None:
    """Bob moderates his own server; here he is a plain member and cannot delete Alice's images."""
    await bob_owns_another_server(harness)
    async with harness.running():
        await harness.imagine(user_id=harness.alice)
        (result,) = results(await harness.wait_for_messages(delivered))
        answer = await click(harness, result, "delete", harness.bob)
        result = await harness.fake.message(result["id"])
    assert "or a moderator of its server" in answer
    assert not result["deleted"]


async def test_moderator_deletes_a_result_of_their_server(harness: Harness) -> None:
    """A moderator of the job's server deletes a member's images."""
    async with harness.running():
        await harness.imagine(user_id=harness.alice)
        (result,) = results(await harness.wait_for_messages(delivered))
        answer = await click(harness, result, "delete", harness.mod)
    assert "Deleted." in answer
    assert (await harness.fake.message(result["id"]))["deleted"]


async def test_operator_deletes_a_result(harness: Harness) -> None:
    """The operator deletes any member's images, even where they are a plain member."""
    olive = await an_operator(harness)
    async with harness.running(bot_owner_ids=str(olive)):
        await harness.imagine(user_id=harness.alice)
        (result,) = results(await harness.wait_for_messages(delivered))
        answer = await click(harness, result, "delete", olive)
    assert "Deleted." in answer
    assert (await harness.fake.message(result["id"]))["deleted"]


async def test_reroll_of_someone_elses_images_is_refused_to_a_plain_member(harness: Harness) -> None:
    """Re-roll belongs to the job's owner (and its server's moderators): Bob, who moderates only his own server,
    is told to use /imagine, and nothing is sent to RunPod."""
    await bob_owns_another_server(harness)
    async with harness.running():
        await harness.imagine(user_id=harness.alice, prompt="a blue whale")
        (result,) = results(await harness.wait_for_messages(delivered))
        answer = await click(harness, result, "reroll", harness.bob)
    assert "or a moderator of its server can re-roll" in answer
    assert "/imagine" in answer
    assert harness.emulator.counters.request_count("run") == 1
    assert len(await harness.messages()) == 1


async def test_moderator_rerolls_a_members_images_as_their_own_job(harness: Harness) -> None:
    """A moderator of the job's server may re-roll it; the new job is the moderator's."""
    async with harness.running():
        await harness.imagine(user_id=harness.alice, prompt="a blue whale")
        (result,) = results(await harness.wait_for_messages(delivered))
        answer = await click(harness, result, "reroll", harness.mod)
        jid = await jid_in(harness, answer)
    job = await harness.redis_jobs(jid)
    assert job.user_id == harness.mod
    assert job.request["prompt"] == "a blue whale"


async def failed_card(harness: Harness) -> MessageView:
    answer = await harness.imagine(user_id=harness.alice, prompt="[emulator:fail-json] broken")
    return await channel_card(harness, harness.channel_id, await submitted_jid(harness, answer), titled("Failed"))


async def test_retry_of_someone_elses_job_is_refused_to_a_plain_member(harness: Harness) -> None:
    """Retry belongs to the job's owner and its server's moderators; nothing is sent to RunPod for anyone else."""
    await bob_owns_another_server(harness)
    async with harness.running():
        card = await failed_card(harness)
        answer = await click(harness, card, "retry", harness.bob)
    assert "or a moderator of its server can retry" in answer
    assert harness.emulator.counters.request_count("run") == 1


async def test_moderator_retries_a_members_failed_job(harness: Harness) -> None:
    """A moderator of the job's server may retry it; the new job is the moderator's."""
    async with harness.running():
        card = await failed_card(harness)
        answer = await click(harness, card, "retry", harness.mod)
        jid = await jid_in(harness, answer)
    assert (await harness.redis_jobs(jid)).user_id == harness.mod


# --- /jobs member ----------------------------------------------------------------------------------------------------


async def test_another_servers_moderator_does_not_see_a_members_jobs_here(harness: Harness) -> None:
    """/jobs member in Bob's server shows none of Alice's jobs from this server."""
    other = await bob_owns_another_server(harness)
    async with harness.running():
        await harness.imagine(user_id=harness.alice, prompt="a quiet harbour")
        await harness.wait_for_messages(delivered)
        interaction = await harness.fake.invoke_command(
            other.channel_id, harness.bob, "jobs", {"member": harness.alice}
        )
        answer = await harness.answered(interaction)
    assert "a quiet harbour" not in embed_text(final_message(answer))


async def test_operator_sees_a_members_jobs_of_every_server(harness: Harness) -> None:
    """The operator's /jobs member lists the member's jobs whatever server it is typed in."""
    olive_guild = await harness.other_guild(name="Olive's Place")
    async with harness.running(bot_owner_ids=str(olive_guild.owner)):
        await harness.imagine(user_id=harness.alice, prompt="a quiet harbour")
        await harness.wait_for_messages(delivered)
        interaction = await harness.fake.invoke_command(
            olive_guild.channel_id, olive_guild.owner, "jobs", {"member": harness.alice}
        )
        answer = await harness.answered(interaction)
    assert "a quiet harbour" in embed_text(final_message(answer))


# --- /health ---------------------------------------------------------------------------------------------------------


async def jobs_in_two_servers_and_an_endpoint_error(harness: Harness, other: OtherGuild) -> None:
    """Two queued jobs here, one in the other server, and a RunPod error the bot recorded."""
    await queued_job(harness, harness.alice, prompt="first here")
    await queued_job(harness, harness.mod, prompt="second here")
    await queued_job(harness, other.owner, channel_id=other.channel_id, prompt="one there")
    harness.emulator.script_faults("status", "server_error")
    store = JobStore(harness.redis)

    async def recorded() -> bool:
        return await store.endpoint_error(harness.emulator.endpoint_id) is not None

    await wait_until(recorded, timeout_s=10)


async def test_health_shows_a_server_moderator_only_their_server(harness: Harness) -> None:
    """A server's moderator sees the workers and their own server's jobs: no other server's counts, no error text."""
    harness.emulator.update_scenario(workers=0, throttled_workers=2)
    other = await bob_owns_another_server(harness)
    async with harness.running():
        await jobs_in_two_servers_and_an_endpoint_error(harness, other)
        answer = await harness.answered(await harness.fake.invoke_command(other.channel_id, harness.bob, "health"))
    message = final_message(answer)
    text = embed_text(message)
    fields = fields_of(message)
    assert "HTTP 500" not in text
    assert "last RunPod error" not in text
    assert "in queue 3" not in text
    assert "active jobs 3" not in text
    assert harness.emulator.endpoint_id not in text
    assert "throttled 2" in fields["Workers"]
    assert fields["This server's jobs"].startswith("1 active")


async def test_health_shows_the_operator_everything(harness: Harness) -> None:
    """The operator sees every server's jobs, RunPod's job counts and RunPod's last error."""
    harness.emulator.update_scenario(workers=0)
    other = await bob_owns_another_server(harness)
    olive = await an_operator(harness)
    async with harness.running(bot_owner_ids=str(olive)):
        await jobs_in_two_servers_and_an_endpoint_error(harness, other)
        answer = await harness.answered(await harness.fake.invoke_command(harness.channel_id, olive, "health"))
    text = embed_text(final_message(answer))
    assert "active jobs 3" in text
    assert "in queue 3" in text
    assert "HTTP 500" in text
    assert harness.emulator.endpoint_id in text
