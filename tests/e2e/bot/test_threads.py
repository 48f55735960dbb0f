"""The bot in threads and forum posts: the card and the result land in the thread the job was asked for in, the
permission check follows the thread's rules, and links point into the thread."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.bot.conftest import (
    Harness,
    answer_text,
    cards,
    delivered,
    final_message,
    job_of,
    results,
    shown,
)
from tests.fakes.discord import ControlError
from tests.fakes.discord.views import MessageView
from tests.waiting import wait_until

SEND_MESSAGES = 1 << 11
MANAGE_THREADS = 1 << 34
SEND_MESSAGES_IN_THREADS = 1 << 38
FORUM = 15


async def messages_in(
    harness: Harness, channel_id: int, predicate: Callable[[list[MessageView]], bool], timeout_s: float = 20
) -> list[MessageView]:
    """The messages of a thread (or any channel) once `predicate` holds for them."""
    found: list[MessageView] = []

    async def check() -> bool:
        nonlocal found
        found = await harness.fake.channel_messages(channel_id)
        return predicate(found)

    await wait_until(check, timeout_s=timeout_s)
    return found


async def public_thread(harness: Harness) -> int:
    thread = await harness.fake.create_thread(harness.channel_id, "critique", owner_id=harness.alice)
    return thread["id"]


async def test_imagine_in_a_public_thread_posts_the_card_and_the_result_in_the_thread(harness: Harness) -> None:
    """The job started in a thread stays there: its result replaces its card in the thread, nothing in the parent."""
    thread_id = await public_thread(harness)
    async with harness.running():
        answer = await harness.imagine(channel_id=thread_id, prompt="a fox in a thread")
        assert answer_text(answer).startswith("Submitted")
        assert f"/{thread_id}/" in answer_text(answer)
        found = await messages_in(harness, thread_id, delivered)
    (result,) = results(found)
    assert (await harness.redis_jobs(job_of(result))).channel_id == thread_id
    assert await harness.messages() == []


async def test_a_thread_open_only_to_send_messages_in_threads_takes_jobs(harness: Harness) -> None:
    """Where the parent channel denies Send Messages but allows Send Messages in Threads, a job in a thread runs."""
    thread_id = await public_thread(harness)
    info = await harness.fake.info()
    await harness.fake.set_channel_overwrite(
        harness.channel_id,
        info["bot_user_id"],
        allow=SEND_MESSAGES_IN_THREADS,
        deny=SEND_MESSAGES,
        target_type="member",
    )
    async with harness.running():
        answer = await harness.imagine(channel_id=thread_id)
        assert answer_text(answer).startswith("Submitted"), answer_text(answer)
        found = await messages_in(harness, thread_id, delivered)
    assert len(results(found)) == 1


async def test_a_thread_without_send_messages_in_threads_is_refused_by_name(harness: Harness) -> None:
    """Where the bot may post in the channel but not in its threads, a job in a thread is refused naming the thread
    permission, and nothing is started."""
    thread_id = await public_thread(harness)
    info = await harness.fake.info()
    await harness.fake.set_channel_overwrite(
        harness.channel_id, info["bot_user_id"], deny=SEND_MESSAGES_IN_THREADS, target_type="member"
    )
    async with harness.running():
        answer = await harness.imagine(channel_id=thread_id)
    text = answer_text(answer)
    assert "**Send Messages in Threads**" in text
    assert "**Send Messages**" not in text
    assert harness.emulator.counters.request_count("run") == 0


async def test_a_private_thread_the_bot_is_not_in_is_refused_saying_how_to_add_it(harness: Harness) -> None:
    """In a private thread the bot cannot see, /imagine says to add the bot to the thread (or grant Manage Threads)."""
    thread = await harness.fake.create_thread(harness.channel_id, "secret", owner_id=harness.alice, private=True)
    async with harness.running():
        answer = await harness.imagine(channel_id=thread["id"])
    text = answer_text(answer)
    assert "private thread" in text
    assert "add me" in text.lower()
    assert "Manage Threads" in text
    assert harness.emulator.counters.request_count("run") == 0


async def test_imagine_in_a_private_thread_the_bot_was_added_to_delivers_there(harness: Harness) -> None:
    """A private thread the bot is a member of works like any thread."""
    info = await harness.fake.info()
    thread = await harness.fake.create_thread(
        harness.channel_id, "secret", owner_id=harness.alice, private=True, member_ids=[info["bot_user_id"]]
    )
    async with harness.running():
        answer = await harness.imagine(channel_id=thread["id"])
        assert answer_text(answer).startswith("Submitted"), answer_text(answer)
        found = await messages_in(harness, thread["id"], delivered)
    assert len(results(found)) == 1


async def test_imagine_in_a_forum_post_delivers_in_the_post(harness: Harness) -> None:
    """A forum post is a thread of the forum: the card and the result land in the post, after its first message."""
    forum = await harness.fake.create_channel(harness.guild_id, "gallery", channel_type=FORUM)
    post = await harness.fake.create_thread(forum["id"], "my series", owner_id=harness.alice, content="ideas here")
    async with harness.running():
        answer = await harness.imagine(channel_id=post["id"])
        assert answer_text(answer).startswith("Submitted"), answer_text(answer)
        found = await messages_in(harness, post["id"], delivered)
    assert found[0]["content"] == "ideas here"
    assert len(results(found)) == 1


async def test_reroll_in_a_thread_posts_the_new_job_in_the_same_thread(harness: Harness) -> None:
    """A result's button pressed in a thread starts its job in that thread."""
    thread_id = await public_thread(harness)
    async with harness.running():
        await harness.imagine(channel_id=thread_id, prompt="a blue whale")
        found = await messages_in(harness, thread_id, delivered)
        (result,) = results(found)
        click = await harness.fake.click_button(result["id"], f"job:reroll:{job_of(result)}", harness.alice)
        answer = await harness.answered(click)
        assert answer_text(answer).startswith("Submitted")
        found = await messages_in(harness, thread_id, lambda f: len(results(f)) == 2 and not cards(f))
    assert await harness.messages() == []


async def test_jobs_links_a_job_in_a_thread_through_the_thread(harness: Harness) -> None:
    """/jobs links a result posted in a thread with the thread's id as its channel."""
    thread_id = await public_thread(harness)
    async with harness.running():
        await harness.imagine(channel_id=thread_id, prompt="threaded picture")
        found = await messages_in(harness, thread_id, delivered)
        mine = await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.alice, "jobs"))
    (result,) = results(found)
    description = final_message(mine)["embeds"][0]["description"]
    assert f"/{harness.guild_id}/{thread_id}/{result['id']}" in description


async def card_in(harness: Harness, thread_id: int) -> MessageView:
    """The job card once the bot has posted it in the thread."""
    (card,) = cards(await messages_in(harness, thread_id, lambda found: len(cards(found)) == 1))
    return card


async def delivered_state(harness: Harness, jid: str) -> None:
    async def done() -> bool:
        return (await harness.redis_jobs(jid)).state.value == "DELIVERED"

    await wait_until(done, timeout_s=20)


async def test_a_thread_archived_while_the_job_ran_gets_the_result_and_is_unarchived(harness: Harness) -> None:
    """A thread archived under a running job receives its result all the same (posting unarchives it)."""
    harness.emulator.update_scenario(execution_s=1.5)
    thread_id = await public_thread(harness)
    async with harness.running():
        await harness.imagine(channel_id=thread_id)
        card = await card_in(harness, thread_id)
        await harness.fake.set_thread_state(thread_id, archived=True)
        found = await messages_in(harness, thread_id, delivered)
        await delivered_state(harness, job_of(card))
    assert len(results(found)) == 1
    assert not (await harness.fake.channel(thread_id))["archived"]


async def test_a_locked_archived_thread_gets_its_result_in_the_parent_channel_with_a_link(harness: Harness) -> None:
    """Where the bot may not reopen a locked thread, the result goes to the parent channel, saying why and linking
    the thread; the job is delivered, and /jobs links the result where it is."""
    harness.emulator.update_scenario(execution_s=1.5)
    thread_id = await public_thread(harness)
    async with harness.running():
        await harness.imagine(channel_id=thread_id, prompt="a locked-away fox")
        card = await card_in(harness, thread_id)
        jid = job_of(card)
        await harness.fake.set_thread_state(thread_id, archived=True, locked=True)
        found = await harness.wait_for_messages(lambda f: len(results(f)) == 1)
        await delivered_state(harness, jid)
        mine = await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.alice, "jobs"))
    (result,) = results(found)
    assert job_of(result) == jid
    text = shown(result)
    assert "locked" in text
    assert f"https://discord.com/channels/{harness.guild_id}/{thread_id}" in text
    assert results(await harness.fake.channel_messages(thread_id)) == []
    description = final_message(mine)["embeds"][0]["description"]
    assert f"/{harness.guild_id}/{harness.channel_id}/{result['id']}" in description


async def test_a_locked_thread_is_reopened_when_the_bot_has_manage_threads(harness: Harness) -> None:
    """With Manage Threads the bot delivers into a locked, archived thread rather than beside it."""
    harness.emulator.update_scenario(execution_s=1.5)
    thread_id = await public_thread(harness)
    info = await harness.fake.info()
    await harness.fake.set_channel_overwrite(
        harness.channel_id, info["bot_user_id"], allow=MANAGE_THREADS, target_type="member"
    )
    async with harness.running():
        await harness.imagine(channel_id=thread_id)
        await card_in(harness, thread_id)
        await harness.fake.set_thread_state(thread_id, archived=True, locked=True)
        found = await messages_in(harness, thread_id, delivered)
    assert len(results(found)) == 1
    assert results(await harness.messages()) == []


async def test_a_deleted_thread_ends_the_job_and_sends_the_result_by_dm(harness: Harness) -> None:
    """When the thread is deleted under a running job, the job is still finished and its owner gets the images by
    direct message."""
    harness.emulator.update_scenario(execution_s=1.5)
    thread_id = await public_thread(harness)
    async with harness.running():
        await harness.imagine(channel_id=thread_id)
        jid = job_of(await card_in(harness, thread_id))
        await harness.fake.delete_channel(thread_id)
        await delivered_state(harness, jid)
        dm = await harness.fake.dm_channel(harness.alice)
    assert dm is not None
    (result,) = results(await harness.fake.channel_messages(dm["id"]))
    assert job_of(result) == jid
    assert results(await harness.messages()) == []


CREATE_PUBLIC_THREADS = 1 << 35


async def settings_text(harness: Harness, command: str, **options: object) -> str:
    interaction = await harness.fake.invoke_command(harness.channel_id, harness.mod, f"settings {command}", options)
    return answer_text(await harness.answered(interaction))


async def test_imagine_with_thread_starts_a_thread_from_its_card_and_posts_the_result_there(
    harness: Harness,
) -> None:
    """thread:True opens a thread named after the prompt from the job's card; the result lands in that thread and the
    card stays in the channel with the outcome."""
    async with harness.running():
        answer = await harness.imagine(prompt="a  lighthouse\nin fog", thread=True)
        assert "thread" in answer_text(answer)
        (card,) = cards(await harness.wait_for_messages(lambda f: len(cards(f)) == 1))
        found = await messages_in(harness, card["id"], lambda f: len(results(f)) == 1)
        await delivered_state(harness, job_of(card))
    thread = await harness.fake.channel(card["id"])
    assert (thread["name"], thread["parent_id"]) == ("a lighthouse in fog", harness.channel_id)
    assert job_of(results(found)[0]) == job_of(card)
    assert results(await harness.messages()) == []
    assert [c["id"] for c in cards(await harness.messages())] == [card["id"]]


async def test_a_thread_name_is_the_prompt_cut_to_discords_100_characters(harness: Harness) -> None:
    """A long prompt names its thread with its first 99 characters and an ellipsis."""
    prompt = "a very detailed painting of " + "mountains and rivers " * 8
    async with harness.running():
        await harness.imagine(prompt=prompt, thread=True)
        (card,) = cards(await harness.wait_for_messages(lambda f: len(cards(f)) == 1))
        await messages_in(harness, card["id"], lambda f: len(results(f)) == 1)
    name = (await harness.fake.channel(card["id"]))["name"]
    assert len(name) == 100
    assert name == " ".join(prompt.split())[:99] + "…"


async def test_the_server_setting_gives_every_job_a_thread_and_is_shown_and_logged(harness: Harness) -> None:
    """/settings thread on: a job without the option gets its thread; /settings show and log say so."""
    async with harness.running():
        assert "a thread per job: on" in await settings_text(harness, "thread", on=True)
        shown_panel = final_message(
            await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.mod, "settings show"))
        )["embeds"][0]
        log_text = final_message(
            await harness.answered(await harness.fake.invoke_command(harness.channel_id, harness.mod, "settings log"))
        )["embeds"][0]["description"]
        await harness.imagine(prompt="a fox")
        (card,) = cards(await harness.wait_for_messages(lambda f: len(cards(f)) == 1))
        found = await messages_in(harness, card["id"], lambda f: len(results(f)) == 1)
    fields = {field["name"]: field["value"] for field in shown_panel["fields"]}
    assert fields["A thread per job"].startswith("yes")
    assert "a thread per job: on" in log_text
    assert len(results(found)) == 1


async def test_variations_and_rerolls_of_a_result_in_its_thread_stay_in_that_thread(harness: Harness) -> None:
    """With a thread per job on, Re-roll and V pressed on a result in its thread post their jobs in the same thread
    (no thread inside the thread)."""
    async with harness.running():
        await settings_text(harness, "thread", on=True)
        await harness.imagine(prompt="a harbour")
        (card,) = cards(await harness.wait_for_messages(lambda f: len(cards(f)) == 1))
        thread_id = card["id"]
        (result,) = results(await messages_in(harness, thread_id, lambda f: len(results(f)) == 1))
        jid = job_of(result)
        for custom_id in (f"job:reroll:{jid}", f"job:v1:{jid}"):
            answer = await harness.answered(await harness.fake.click_button(result["id"], custom_id, harness.alice))
            assert answer_text(answer).startswith("Submitted"), answer_text(answer)
        found = await messages_in(harness, thread_id, lambda f: len(results(f)) == 3 and not cards(f))
    assert len(results(found)) == 3
    assert [c["id"] for c in cards(await harness.messages())] == [thread_id]
    # No card in the thread started a thread of its own (a thread's id would be its card's).
    for card_in_thread in cards(await harness.fake.channel_messages(thread_id, include_deleted=True)) + [
        m for m in await harness.fake.channel_messages(thread_id, include_deleted=True) if m["deleted"]
    ]:
        with pytest.raises(ControlError):
            await harness.fake.channel(card_in_thread["id"])


async def test_thread_true_without_create_public_threads_runs_in_the_channel_and_says_why(harness: Harness) -> None:
    """Where the bot may not start threads, the job runs in the channel and the member reads which permission is
    missing."""
    info = await harness.fake.info()
    await harness.fake.set_channel_overwrite(
        harness.channel_id, info["bot_user_id"], deny=CREATE_PUBLIC_THREADS, target_type="member"
    )
    async with harness.running():
        answer = await harness.imagine(thread=True)
        found = await harness.wait_for_messages(delivered)
    assert "No thread for this job" in answer_text(answer)
    assert "**Create Public Threads**" in answer_text(answer)
    assert len(results(found)) == 1


async def test_thread_true_in_a_thread_keeps_the_job_in_that_thread(harness: Harness) -> None:
    """Asked for a thread inside a thread (or forum post), the job stays where it is, and the member is told."""
    thread_id = await public_thread(harness)
    async with harness.running():
        answer = await harness.imagine(channel_id=thread_id, thread=True)
        found = await messages_in(harness, thread_id, delivered)
    assert "already a thread" in answer_text(answer)
    assert len(results(found)) == 1


async def test_a_deleted_thread_and_closed_dms_end_the_job_not_delivered_with_the_reason(harness: Harness) -> None:
    """With the thread gone and the owner's DMs closed, the job ends at once, recorded as not delivered, with
    Discord's reason; nothing is retried for ever."""
    harness.emulator.update_scenario(execution_s=1.5)
    thread_id = await public_thread(harness)
    await harness.fake.set_dms_open(harness.alice, False)
    async with harness.running():
        await harness.imagine(channel_id=thread_id)
        jid = job_of(await card_in(harness, thread_id))
        await harness.fake.delete_channel(thread_id)

        async def ended() -> bool:
            return not (await harness.redis_jobs(jid)).state.is_live

        await wait_until(ended, timeout_s=20)
    job = await harness.redis_jobs(jid)
    assert "Cannot send messages to this user" in str(job.extra.get("delivery_failed"))
    assert job.result_message_ids == []
