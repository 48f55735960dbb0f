"""The buttons on a result: Info, Remix and U1…Un (Re-roll and Delete: test_imagine, test_server_boundaries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.bot.conftest import (
    Harness,
    answer_text,
    buttons,
    delivered,
    final_message,
    is_ephemeral,
    job_of,
    results,
    shown,
)
from tests.e2e.bot.test_server_boundaries import bob_owns_another_server
from tests.e2e.bot.test_worker_results import models_file
from tests.fakes.discord.views import InteractionView, MessageView


def info_fields(view: InteractionView) -> dict[str, str]:
    embed = final_message(view)["embeds"][0]
    return {field["name"]: field["value"] for field in embed["fields"]} | {"footer": embed["footer"]["text"]}


def form_values(modal: dict[str, Any]) -> dict[str, str | None]:
    """A modal's text inputs and their prefilled values, whether in labels or in action rows."""
    inputs = [item.get("component") or item["components"][0] for item in modal["components"]]
    return {item["custom_id"]: item.get("value") for item in inputs}


async def one_result(harness: Harness, **options: Any) -> MessageView:
    """Alice's job, delivered; its result message."""
    await harness.imagine(**options)
    (result,) = results(await harness.wait_for_messages(delivered))
    return result


async def test_info_shows_every_parameter_and_each_images_seed_to_the_clicker_alone(
    harness: Harness, tmp_path: Path
) -> None:
    """Info answers only the member who clicked: prompt, negative prompt, guidance, each image's seed, model, queue
    and GPU time, and the job id."""
    async with harness.running(models_file=models_file(harness, tmp_path, "a1111")):
        result = await one_result(
            harness, prompt="a fox [emulator:a1111]", negative="blurry", seed=42, count=2, guidance=6.5
        )
        jid = job_of(result)
        view = await harness.answered(await harness.fake.click_button(result["id"], f"job:info:{jid}", harness.bob))
    assert is_ephemeral(view)
    fields = info_fields(view)
    assert fields["Negative prompt"] == "blurry"
    assert fields["Guidance"] == "6.5"
    assert fields["Seeds"] == "Image 1: 42\nImage 2: 43"
    assert fields["Model"] == "m"
    assert fields["GPU time"].endswith(" s")
    assert fields["Queue time"].endswith(" s")
    assert fields["footer"] == f"job {jid}"


async def test_info_gives_the_endpoints_queue_at_submit_when_the_bot_knew_it(harness: Harness) -> None:
    """A job submitted while the bot knew the endpoint's queue (from the job before) says how long it was."""
    async with harness.running():
        await one_result(harness, prompt="the first")
        await harness.imagine(prompt="the second")
        messages = await harness.wait_for_messages(lambda found: len(results(found)) == 2 and delivered(found))
        second = results(messages)[1]
        view = await harness.answered(
            await harness.fake.click_button(second["id"], f"job:info:{job_of(second)}", harness.alice)
        )
    assert info_fields(view)["Queue at submit"].endswith(("job waiting", "jobs waiting"))


async def test_info_works_on_a_result_posted_before_a_restart(harness: Harness) -> None:
    """The Info button of a result posted by the previous process answers in the next one."""
    async with harness.running():
        result = await one_result(harness, prompt="before the restart", seed=7)
    async with harness.running():
        view = await harness.answered(
            await harness.fake.click_button(result["id"], f"job:info:{job_of(result)}", harness.alice)
        )
    assert info_fields(view)["Seeds"].startswith("7")


async def test_remix_prefills_the_prompts_and_runs_the_edited_ones_as_a_new_job(harness: Harness) -> None:
    """Remix opens a form with the prompt and negative prompt; the edited prompts run as a new job with a new seed."""
    async with harness.running():
        result = await one_result(harness, prompt="a red fox", negative="blurry", seed=5)
        click = await harness.fake.click_button(result["id"], f"job:remix:{job_of(result)}", harness.alice)
        modal = await harness.fake.wait_for_modal(click["id"])
        values = form_values(modal)
        submitted = await harness.fake.submit_modal(click["id"], {"prompt": "a blue fox", "negative": ""})
        answer = await harness.answered(submitted)
        messages = await harness.wait_for_messages(lambda found: len(results(found)) == 2 and delivered(found))
    assert values == {"prompt": "a red fox", "negative": "blurry"}
    assert answer_text(answer).startswith("Submitted")
    remixed = await harness.redis_jobs(job_of(results(messages)[1]))
    assert remixed.request["prompt"] == "a blue fox"
    assert remixed.request["negative_prompt"] == ""
    assert remixed.request["seed"] != 5
    assert remixed.user_id == harness.alice
    assert (remixed.extra["parent_jid"], remixed.extra["parent_action"]) == (job_of(result), "remix")


async def test_remix_with_a_denied_term_is_refused_with_the_usual_message(harness: Harness) -> None:
    """A term the deny-list forbids, typed into the Remix form, is refused as /imagine refuses it; nothing runs."""
    async with harness.running(prompt_denylist="Blood Bath"):
        result = await one_result(harness, prompt="a calm lake")
        click = await harness.fake.click_button(result["id"], f"job:remix:{job_of(result)}", harness.alice)
        await harness.fake.wait_for_modal(click["id"])
        answer = await harness.answered(await harness.fake.submit_modal(click["id"], {"prompt": "a blood bath"}))
    assert "doesn't allow the term “Blood Bath”" in answer_text(answer)
    assert harness.emulator.counters.request_count("run") == 1


async def test_remix_is_refused_to_a_member_who_neither_owns_nor_moderates_the_job(harness: Harness) -> None:
    """Bob (a moderator only of his own server) gets the rule in words, and no form."""
    await bob_owns_another_server(harness)
    async with harness.running():
        result = await one_result(harness, prompt="alice's lake")
        view = await harness.answered(
            await harness.fake.click_button(result["id"], f"job:remix:{job_of(result)}", harness.bob)
        )
    assert "or a moderator of its server can remix it" in answer_text(view)
    assert view["modal"] is None


async def test_upscale_posts_that_image_alone_at_full_resolution_as_a_new_message(harness: Harness) -> None:
    """U2 posts image 2, byte for byte as Discord holds it on the result, as a message of its own."""
    async with harness.running():
        result = await one_result(harness, prompt="two foxes", count=2)
        jid = job_of(result)
        assert buttons(result)[:2] == [f"job:u1:{jid}", f"job:u2:{jid}"]
        view = await harness.answered(await harness.fake.click_button(result["id"], f"job:u2:{jid}", harness.alice))
        messages = await harness.wait_for_messages(lambda found: len(results(found)) == 2)
        second = result["attachments"][1]
        upscaled = results(messages)[1]
        posted = await harness.fake.attachment_bytes(upscaled["attachments"][0]["url"])
        original = await harness.fake.attachment_bytes(second["url"])
    assert is_ephemeral(view)
    assert len(upscaled["attachments"]) == 1
    assert posted == original
    assert shown(upscaled).splitlines()[0].startswith("Image 2 of ")
    assert f"gallery: {second['filename']} (1024x1024)" in shown(upscaled)
    assert not upscaled["pinged_anyone"]


async def test_upscale_is_for_the_owner_and_the_servers_moderators(harness: Harness) -> None:
    """A member of another server is refused U1 with the rule; a moderator of the job's server may use it."""
    await bob_owns_another_server(harness)
    async with harness.running():
        result = await one_result(harness, prompt="a shared fox")
        jid = job_of(result)
        refused = await harness.answered(await harness.fake.click_button(result["id"], f"job:u1:{jid}", harness.bob))
        allowed = await harness.answered(await harness.fake.click_button(result["id"], f"job:u1:{jid}", harness.mod))
        messages = await harness.wait_for_messages(lambda found: len(results(found)) == 2)
    assert "or a moderator of its server can upscale its images" in answer_text(refused)
    assert answer_text(allowed).startswith("Image 1, on its own: https://discord.com/channels/")
    assert len(results(messages)) == 2


async def test_a_remix_form_opened_before_a_restart_is_answered_after_it(harness: Harness) -> None:
    """The member opens Remix, the bot restarts, the member submits: the next process runs the remix."""
    async with harness.running():
        result = await one_result(harness, prompt="a red fox", seed=5)
        click = await harness.fake.click_button(result["id"], f"job:remix:{job_of(result)}", harness.alice)
        await harness.fake.wait_for_modal(click["id"])
    async with harness.running():
        answer = await harness.answered(await harness.fake.submit_modal(click["id"], {"prompt": "a green fox"}))
        messages = await harness.wait_for_messages(lambda found: len(results(found)) == 2 and delivered(found))
    assert answer_text(answer).startswith("Submitted")
    assert (await harness.redis_jobs(job_of(results(messages)[1]))).request["prompt"] == "a green fox"
