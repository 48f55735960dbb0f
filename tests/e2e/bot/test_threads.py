"""The bot in threads and forum posts: the card and the result land in the thread the job was asked for in, the
permission check follows the thread's rules, and links point into the thread."""

from __future__ import annotations

from collections.abc import Callable

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
