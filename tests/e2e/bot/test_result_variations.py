"""V1…Vn on the result gallery, end to end: a new job from that image's pixels, named after its parent, under the
rules of every job button (owner or a moderator of the job's server) and the admission of /imagine."""

from __future__ import annotations

from typing import Any

from tests.e2e.bot.conftest import Harness, answer_text, delivered, final_message, job_of, results
from tests.e2e.bot.test_server_boundaries import bob_owns_another_server
from tests.e2e.bot.test_variations import difference, image_of, nth_result
from tests.fakes.discord.views import InteractionView, MessageView


async def two_image_result(harness: Harness, prompt: str = "a castle on a hill") -> MessageView:
    """Alice's two-image job, delivered; its gallery."""
    await harness.imagine(prompt=prompt, count=2)
    (result,) = results(await harness.wait_for_messages(delivered))
    return result


async def click(harness: Harness, message: MessageView, custom_id: str, user_id: int) -> InteractionView:
    return await harness.answered(await harness.fake.click_button(message["id"], custom_id, user_id))


def info_fields(view: InteractionView) -> dict[str, Any]:
    embed = final_message(view)["embeds"][0]
    return {field["name"]: field["value"] for field in embed["fields"]}


async def test_the_gallery_shows_a_row_of_u_a_row_of_v_then_the_jobs_buttons(harness: Harness) -> None:
    """A two-image result's buttons read U1 U2 / V1 V2 / Re-roll Remix Info Delete, one row each."""
    async with harness.running():
        result = await two_image_result(harness)
    jid = job_of(result)
    rows = [[button["custom_id"] for button in row["components"]] for row in result["components"] if row["type"] == 1]
    assert rows == [
        [f"job:u1:{jid}", f"job:u2:{jid}"],
        [f"job:v1:{jid}", f"job:v2:{jid}"],
        [f"job:reroll:{jid}", f"job:remix:{jid}", f"job:info:{jid}", f"job:delete:{jid}"],
    ]


async def test_v2_starts_a_new_job_from_image_two_that_names_its_parent(harness: Harness) -> None:
    """V2 on the gallery: a new job of the owner with the same prompt and a new seed, drawn over image 2 (not
    image 1), whose record names the parent job and image 2."""
    async with harness.running():
        parent_result = await two_image_result(harness)
        parent_jid = job_of(parent_result)
        answer = await click(harness, parent_result, f"job:v2:{parent_jid}", harness.alice)
        child_result = await nth_result(harness, 2)
        variation = await image_of(harness, child_result)
        image_one, image_two = await image_of(harness, parent_result, 1), await image_of(harness, parent_result, 2)
    assert answer_text(answer).startswith("Submitted")
    assert difference(variation, image_two) < 4 < difference(variation, image_one)
    parent, child = await harness.redis_jobs(parent_jid), await harness.redis_jobs(job_of(child_result))
    assert child.user_id == harness.alice
    assert child.request["prompt"] == parent.request["prompt"]
    assert child.request["seed"] != parent.request["seed"]
    assert child.request["source_image_url"] == parent_result["attachments"][1]["url"]
    assert (child.extra["parent_jid"], child.extra["parent_action"], child.extra["parent_image"]) == (
        parent_jid,
        "variation",
        2,
    )


async def test_info_of_a_variation_links_the_result_it_came_from(harness: Harness) -> None:
    """Info on V2's result says "Variation of image 2 of" with a link to the parent's result message."""
    async with harness.running():
        parent_result = await two_image_result(harness)
        parent_jid = job_of(parent_result)
        await click(harness, parent_result, f"job:v2:{parent_jid}", harness.alice)
        child_result = await nth_result(harness, 2)
        info = await click(harness, child_result, f"job:info:{job_of(child_result)}", harness.alice)
    link = f"https://discord.com/channels/{harness.guild_id}/{harness.channel_id}/{parent_result['id']}"
    assert info_fields(info)["Made from"] == f"Variation of image 2 of [job `{parent_jid}`]({link})"


async def test_v_buttons_of_a_result_posted_before_a_restart_still_vary(harness: Harness) -> None:
    """V2 on a gallery posted by the previous process starts, in the next one, a job drawn over image 2."""
    async with harness.running():
        parent_result = await two_image_result(harness)
    async with harness.running():
        answer = await click(harness, parent_result, f"job:v2:{job_of(parent_result)}", harness.alice)
        child_result = await nth_result(harness, 2)
        variation = await image_of(harness, child_result)
        image_one, image_two = await image_of(harness, parent_result, 1), await image_of(harness, parent_result, 2)
    assert answer_text(answer).startswith("Submitted")
    assert difference(variation, image_two) < 4 < difference(variation, image_one)
    child = await harness.redis_jobs(job_of(child_result))
    assert (child.extra["parent_jid"], child.extra["parent_image"]) == (job_of(parent_result), 2)


async def test_vary_is_for_the_owner_and_the_servers_moderators(harness: Harness) -> None:
    """Bob (a plain member here, a moderator only of his own server) is refused V2 with the rule; this server's
    moderator may vary it, as a job of their own."""
    await bob_owns_another_server(harness)
    async with harness.running():
        parent_result = await two_image_result(harness)
        jid = job_of(parent_result)
        refused = await click(harness, parent_result, f"job:v2:{jid}", harness.bob)
        allowed = await click(harness, parent_result, f"job:v2:{jid}", harness.mod)
        child_result = await nth_result(harness, 2)
    assert answer_text(refused).startswith(
        f"Only the member who started job `{jid}` or a moderator of its server can vary its images."
    )
    assert "Vary this image" in answer_text(refused)
    assert answer_text(allowed).startswith("Submitted")
    assert (await harness.redis_jobs(job_of(child_result))).user_id == harness.mod
    assert harness.emulator.counters.request_count("run") == 2


async def test_vary_is_refused_by_the_members_cooldown(harness: Harness) -> None:
    """With a cooldown, V1 right after the job is told when the member can submit again; nothing is sent."""
    async with harness.running(user_cooldown_s=60):
        parent_result = await two_image_result(harness)
        answer = await click(harness, parent_result, f"job:v1:{job_of(parent_result)}", harness.alice)
    assert "you can submit again in" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 1


async def test_vary_is_refused_by_the_members_quota(harness: Harness) -> None:
    """With one active job allowed and one queued, V1 is refused naming the limit; nothing more is sent."""
    async with harness.running(user_active_jobs=1):
        parent_result = await two_image_result(harness)
        harness.emulator.update_scenario(workers=0)
        assert answer_text(await harness.imagine(prompt="waiting in line")).startswith("Submitted")
        answer = await click(harness, parent_result, f"job:v1:{job_of(parent_result)}", harness.alice)
    assert "(the limit is 1)" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 2


async def test_vary_is_refused_when_the_prompt_has_a_term_denied_since(harness: Harness) -> None:
    """A result whose prompt has a term the operator denied after it ran cannot be varied: the usual refusal."""
    async with harness.running():
        parent_result = await two_image_result(harness, prompt="a blood bath in the castle")
    async with harness.running(prompt_denylist="Blood Bath"):
        answer = await click(harness, parent_result, f"job:v1:{job_of(parent_result)}", harness.alice)
    assert "doesn't allow the term “Blood Bath”" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 1


async def test_info_of_a_reroll_names_the_job_it_rerolled(harness: Harness) -> None:
    """Re-roll's job records its parent, and its Info says "Re-roll of" that job."""
    async with harness.running():
        parent_result = await two_image_result(harness)
        parent_jid = job_of(parent_result)
        await click(harness, parent_result, f"job:reroll:{parent_jid}", harness.alice)
        child_result = await nth_result(harness, 2)
        info = await click(harness, child_result, f"job:info:{job_of(child_result)}", harness.alice)
    assert info_fields(info)["Made from"].startswith(f"Re-roll of [job `{parent_jid}`](")
    assert (await harness.redis_jobs(job_of(child_result))).extra["parent_action"] == "reroll"
