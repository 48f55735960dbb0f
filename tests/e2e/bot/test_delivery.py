"""Results Discord cannot take as the worker returned them: too many images, a refused post, an image that cannot be
decoded, a payload too large. Each job ends at once, and its card says what happened."""

from __future__ import annotations

from collections.abc import Callable

from jobs.presets import PRESETS
from storage.store import JobStore
from tests.e2e.bot.conftest import Harness, answer_text, cards, delivered, job_of, results, shown
from tests.fakes.discord.views import MessageView, RequestView
from tests.waiting import wait_until

# The default model's preset (sdxl: worker-sdxl's num_images is 1-2) allows this many images per job.
SDXL_MAX_COUNT = PRESETS["sdxl"].limits.max_count


def card_titled(jid: str, title: str) -> Callable[[list[MessageView]], bool]:
    def check(found: list[MessageView]) -> bool:
        return any(job_of(card) == jid and card["embeds"][0]["title"] == title for card in cards(found))

    return check


def fields_of(message: MessageView) -> dict[str, str]:
    return {field["name"]: field["value"] for field in message["embeds"][0]["fields"]}


def result_posts(requests: list[RequestView], channel_id: int) -> list[RequestView]:
    """Message creates in the channel after the first (the card): the attempts to post the result."""
    creates = [r for r in requests if r["method"] == "POST" and r["path"] == f"/channels/{channel_id}/messages"]
    return creates[1:]


async def submitted_jid(harness: Harness, prompt: str) -> str:
    answer = await harness.imagine(prompt=prompt)
    text = answer_text(answer)
    assert text.startswith("Submitted"), text
    return await harness.jid_of(answer)


async def test_worker_returning_more_images_than_allowed_posts_the_models_maximum_and_says_what_was_dropped(
    harness: Harness,
) -> None:
    """A worker that returns 11 images: the model's 2 are posted, and the result says 9 were not."""
    harness.emulator.update_scenario(images=11)
    async with harness.running():
        await harness.imagine(prompt="a flock of starlings", count=2)
        messages = await harness.wait_for_messages(delivered)
    (result,) = results(messages)
    assert len(result["attachments"]) == SDXL_MAX_COUNT
    assert "11 images returned; the model allows 2, so 9 were not posted." in shown(result)


async def test_discord_refusing_the_result_ends_the_job_at_once_with_the_reason_on_the_card(harness: Harness) -> None:
    """A 400 on the result post is not retried: one attempt, then the card says the images were not delivered, why."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running():
        jid = await submitted_jid(harness, "a refused picture")
        await harness.fake.inject_error(
            status=400,
            code=50035,
            message="Invalid Form Body",
            method="POST",
            path=rf"/channels/{harness.channel_id}/messages$",
            count=10,
        )
        harness.emulator.update_scenario(workers=2)
        messages = await harness.wait_for_messages(card_titled(jid, "Not delivered"))

        async def committed() -> bool:
            return (await harness.redis_jobs(jid)).state.value == "DELIVERED"

        await wait_until(committed)
        posts = result_posts(await harness.fake.requests(), harness.channel_id)
        job = await harness.redis_jobs(jid)
    assert [post["status"] for post in posts] == [400]
    reason = fields_of(cards(messages)[0])["Reason"]
    assert "Discord refused" in reason
    assert "Invalid Form Body" in reason
    assert "400" in reason
    assert results(messages) == []
    assert job.extra["delivery_failed"] == reason


async def refused_once(harness: Harness, prompt: str) -> tuple[str, MessageView]:
    """A job whose result Discord refused in the channel (a missing permission) and by DM (closed DMs): its
    "Not delivered" card, once the job is committed."""
    harness.emulator.update_scenario(workers=0)
    jid = await submitted_jid(harness, prompt)
    await harness.fake.inject_error(
        status=403, code=50013, message="Missing Permissions", method="POST", path=r"/channels/\d+/messages$", count=1
    )
    await harness.fake.inject_error(
        status=403,
        code=50007,
        message="Cannot send messages to this user",
        method="POST",
        path=r"/channels/\d+/messages$",
        count=1,
    )
    harness.emulator.update_scenario(workers=2)
    messages = await harness.wait_for_messages(card_titled(jid, "Not delivered"))

    async def committed() -> bool:
        return (await harness.redis_jobs(jid)).state.value == "DELIVERED"

    await wait_until(committed)
    (card,) = [card for card in cards(messages) if job_of(card) == jid]
    return jid, card


def buttons_of(message: MessageView) -> list[str]:
    return [button["custom_id"] for row in message["components"] for button in row.get("components", [])]


async def test_deliver_again_posts_the_refused_images_without_a_new_gpu_job(harness: Harness) -> None:
    """Once the cause is fixed, "Deliver again" on a "Not delivered" card posts the images, with no second /run."""
    async with harness.running():
        jid, card = await refused_once(harness, "a refused lighthouse")
        assert buttons_of(card) == [f"job:redeliver:{jid}"]
        press = await harness.fake.click_button(card["id"], f"job:redeliver:{jid}", harness.alice)
        answer = answer_text(await harness.answered(press))
        messages = await harness.wait_for_messages(delivered)
    assert f"Delivering job `{jid}` again" in answer
    (result,) = results(messages)
    assert job_of(result) == jid
    assert result["attachments"]
    assert harness.emulator.snapshot()["received"].get("run", 0) == 1
    assert "delivery_failed" not in (await harness.redis_jobs(jid)).extra
    # Counted once as delivered, and no longer as waiting for delivery.
    assert await JobStore(harness.redis).counts() == {"delivered:COMPLETED": 1}


async def test_deliver_again_is_refused_to_another_member_and_done_once_for_two_presses(harness: Harness) -> None:
    """Another member may not deliver someone's job again; the owner and a moderator pressing at once post it once."""
    async with harness.running():
        jid, card = await refused_once(harness, "a refused harbour")
        other = answer_text(
            await harness.answered(await harness.fake.click_button(card["id"], f"job:redeliver:{jid}", harness.bob))
        )
        presses = [
            await harness.fake.click_button(card["id"], f"job:redeliver:{jid}", member)
            for member in (harness.alice, harness.mod)
        ]
        answers = [answer_text(await harness.answered(press)) for press in presses]
        messages = await harness.wait_for_messages(delivered)
    assert "deliver its images again" in other
    assert sum(f"Delivering job `{jid}` again" in answer for answer in answers) == 1
    assert sum(f"Job `{jid}` can't be delivered again" in answer for answer in answers) == 1
    assert [job_of(result) for result in results(messages)] == [jid]


async def test_image_that_cannot_be_decoded_fails_the_job_with_the_reason_on_the_card(harness: Harness) -> None:
    """A PNG whose checksums are right but whose pixels are corrupt is not posted; the card says why."""
    async with harness.running():
        jid = await submitted_jid(harness, "[emulator:corrupt-pixels] a glitched sunset")
        messages = await harness.wait_for_messages(card_titled(jid, "Failed"))
    reason = fields_of(cards(messages)[0])["Reason"]
    assert "the worker returned an image that cannot be decoded" in reason
    assert results(messages) == []


async def test_result_too_large_for_discord_is_reencoded_smaller_and_posted(harness: Harness) -> None:
    """A 413 on the result post is answered with a smaller payload (re-encoded), not the same one again."""
    harness.emulator.update_scenario(workers=0, oversized_bytes=3_000_000)
    async with harness.running():
        jid = await submitted_jid(harness, "[emulator:oversized] a detailed map")
        await harness.fake.inject_error(
            status=413,
            code=40005,
            message="Request entity too large",
            method="POST",
            path=rf"/channels/{harness.channel_id}/messages$",
            count=1,
        )
        harness.emulator.update_scenario(workers=2)
        messages = await harness.wait_for_messages(delivered, timeout_s=30)
        posts = result_posts(await harness.fake.requests(), harness.channel_id)
    (result,) = results(messages)
    assert job_of(result) == jid
    (attachment,) = result["attachments"]
    assert attachment["filename"].endswith((".webp", ".jpg"))
    assert attachment["size"] < 3_000_000
    assert [post["status"] for post in posts] == [413, 200]
