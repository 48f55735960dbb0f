"""U1…Un with an upscaler model configured, end to end: a real upscale job of that image (card, then a gallery of
the image enlarged by the emulator's worker-esrgan), under the rules and admission of every job button; and
/imagine, which offers and takes only the models that draw."""

from __future__ import annotations

from pathlib import Path

from jobs.lineage import Derivation, Parent, parent_of
from storage.store import JobStore
from tests.e2e.bot.conftest import (
    Harness,
    answer_text,
    buttons,
    cards,
    delivered,
    final_message,
    job_of,
    removed_cards,
    results,
)
from tests.e2e.bot.test_private_results import dm_results
from tests.e2e.bot.test_result_variations import click, info_fields, two_image_result
from tests.e2e.bot.test_server_boundaries import bob_owns_another_server
from tests.e2e.bot.test_variations import difference, image_of, imagine_with_image, nth_result, png
from tests.fakes.discord.views import MessageView

DRAWS = "xl"
UPSCALER = "esrgan-2x"
# The emulator picks a job's worker from a token in its input: drawings carry it in the prompt, and worker-esrgan's
# input (a link and a factor) has no text, so the scenario's default worker is worker-esrgan.
DRAWN = "[emulator:sdxl] a castle on a hill"


def models_with_upscaler(harness: Harness, directory: Path) -> Path:
    """worker-sdxl draws (the default); worker-esrgan enlarges twice, on the same emulator endpoint."""
    harness.emulator.update_scenario(personality="esrgan")
    endpoint = harness.emulator.endpoint_id
    path = directory / "models.toml"
    path.write_text(
        f'[[models]]\nname = "{DRAWS}"\nendpoint_id = "{endpoint}"\npreset = "sdxl"\ndefault = true\n\n'
        f'[[models]]\nname = "{UPSCALER}"\nendpoint_id = "{endpoint}"\npreset = "esrgan"\ntask = "upscale"\n'
        "scale = 2\n"
    )
    return path


async def upscaled_result(harness: Harness, parent: MessageView, index: int, user_id: int) -> MessageView:
    """Click U<index> on `parent` as `user_id`; the upscale's gallery once delivered (the channel's second result)."""
    answer = await click(harness, parent, f"job:u{index}:{job_of(parent)}", user_id)
    assert answer_text(answer).startswith("Submitted — https://discord.com/channels/"), answer_text(answer)
    return await nth_result(harness, 2)


async def test_u2_with_an_upscaler_posts_a_gallery_of_image_two_enlarged(harness: Harness, tmp_path: Path) -> None:
    """U2 runs an upscale job: its card, then a gallery of one image twice image 2's size, made from image 2's
    pixels (not image 1's), recorded as the upscale of image 2."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        parent = await two_image_result(harness, prompt=DRAWN)
        upscaled = await upscaled_result(harness, parent, 2, harness.alice)
        await harness.wait_for_messages(delivered)
        image_one, image_two = await image_of(harness, parent, 1), await image_of(harness, parent, 2)
        enlarged = await image_of(harness, upscaled)
        everything = await harness.everything()
    assert len(upscaled["attachments"]) == 1
    assert enlarged.size == (image_two.width * 2, image_two.height * 2)
    assert difference(enlarged, image_two) < 4 < difference(enlarged, image_one)
    job = await harness.redis_jobs(job_of(upscaled))
    assert (job.model, job.user_id, parent_of(job)) == (
        UPSCALER,
        harness.alice,
        Parent(job_of(parent), Derivation.UPSCALE, 2),
    )
    assert job.jid in {job_of(card) for card in removed_cards(everything)}
    assert harness.emulator.counters.request_count("run") == 2


async def test_an_upscales_gallery_offers_info_and_delete_only(harness: Harness, tmp_path: Path) -> None:
    """The upscaled result has no U, V, Re-roll or Remix: its image is already alone and enlarged."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        parent = await two_image_result(harness, prompt=DRAWN)
        upscaled = await upscaled_result(harness, parent, 2, harness.alice)
    jid = job_of(upscaled)
    assert buttons(upscaled) == [f"job:info:{jid}", f"job:delete:{jid}"]
    assert "esrgan-2x · 2048×2048 · 2× upscale" in upscaled["components"][0]["content"]


async def test_info_of_an_upscale_names_the_image_the_upscaler_and_the_scale(harness: Harness, tmp_path: Path) -> None:
    """Info on an upscale: "Upscale of image 2 of" the parent's result, linked, the upscaler, the factor, and the
    model that drew the image."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        parent = await two_image_result(harness, prompt=DRAWN)
        upscaled = await upscaled_result(harness, parent, 2, harness.alice)
        info = await click(harness, upscaled, f"job:info:{job_of(upscaled)}", harness.alice)
    link = f"https://discord.com/channels/{harness.guild_id}/{harness.channel_id}/{parent['id']}"
    fields = info_fields(info)
    assert fields["Made from"] == f"Upscale of image 2 of [job `{job_of(parent)}`]({link})"
    assert (fields["Upscaler"], fields["Scale"], fields["Drawn with"]) == (UPSCALER, "2×", DRAWS)


async def test_u2_of_a_result_posted_before_a_restart_still_upscales(harness: Harness, tmp_path: Path) -> None:
    """U2 on a gallery posted by the previous process runs, in the next one, an upscale of image 2."""
    models = models_with_upscaler(harness, tmp_path)
    async with harness.running(models_file=models):
        parent = await two_image_result(harness, prompt=DRAWN)
    async with harness.running(models_file=models):
        upscaled = await upscaled_result(harness, parent, 2, harness.alice)
        image_one, image_two = await image_of(harness, parent, 1), await image_of(harness, parent, 2)
        enlarged = await image_of(harness, upscaled)
    assert enlarged.size == (image_two.width * 2, image_two.height * 2)
    assert difference(enlarged, image_two) < 4 < difference(enlarged, image_one)


async def test_upscale_is_refused_to_a_moderator_of_another_server_and_allowed_to_this_ones(
    harness: Harness, tmp_path: Path
) -> None:
    """Bob, a moderator only of his own server, is refused U1 with the rule and nothing runs; this server's
    moderator may upscale it, as a job of their own."""
    await bob_owns_another_server(harness)
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        parent = await two_image_result(harness, prompt=DRAWN)
        jid = job_of(parent)
        refused = await click(harness, parent, f"job:u1:{jid}", harness.bob)
        runs_after_refusal = harness.emulator.counters.request_count("run")
        upscaled = await upscaled_result(harness, parent, 1, harness.mod)
    assert answer_text(refused).startswith(
        f"Only the member who started job `{jid}` or a moderator of its server can upscale its images."
    )
    assert runs_after_refusal == 1
    assert (await harness.redis_jobs(job_of(upscaled))).user_id == harness.mod


async def test_an_upscale_counts_against_the_members_quota(harness: Harness, tmp_path: Path) -> None:
    """With one active job allowed, an upscale still in the queue takes it: /imagine is refused naming the limit."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path), user_active_jobs=1):
        parent = await two_image_result(harness, prompt=DRAWN)
        harness.emulator.update_scenario(workers=0)
        answer = await click(harness, parent, f"job:u1:{job_of(parent)}", harness.alice)
        refused = await harness.imagine(prompt="[emulator:sdxl] one more")
    assert answer_text(answer).startswith("Submitted")
    assert "(the limit is 1)" in answer_text(refused)
    assert harness.emulator.counters.request_count("run") == 2


async def test_imagine_offers_only_the_models_that_draw(harness: Harness, tmp_path: Path) -> None:
    """/imagine's model choices leave the upscaler out."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        choices = await harness.fake.autocomplete_choices(
            harness.channel_id, harness.alice, "imagine", {"prompt": "a fox", "model": ""}, "model"
        )
    assert [choice["value"] for choice in choices] == [DRAWS]


async def test_imagine_refuses_an_upscaler_named_by_hand(harness: Harness, tmp_path: Path) -> None:
    """/imagine model:esrgan-2x with an image is refused naming the models that draw; nothing is sent to RunPod."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        answer = await imagine_with_image(harness, png((30, 40, 220)), model=UPSCALER)
        messages = await harness.messages()
    assert answer == (
        f"That request can't be made: `model` {UPSCALER} is an upscaler: it enlarges an image of a result (its U "
        f"buttons) and draws nothing from a prompt. Allowed: {DRAWS}."
    )
    assert not results(messages)
    assert harness.emulator.counters.request_count("run") == 0


async def test_a_private_jobs_upscale_runs_and_arrives_in_the_dm(harness: Harness, tmp_path: Path) -> None:
    """U1 on a private job's gallery in the DM runs a private upscale whose card and gallery come there too; nothing
    reaches the channel."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        await harness.imagine(prompt=DRAWN, private=True, count=2)
        dm = await harness.fake.dm_channel(harness.alice)
        assert dm is not None
        (gallery,) = await dm_results(harness, dm["id"], 1)
        answer = await click(harness, gallery, f"job:u1:{job_of(gallery)}", harness.alice)
        upscaled = (await dm_results(harness, dm["id"], 2))[1]
        image_one, enlarged = await image_of(harness, gallery, 1), await image_of(harness, upscaled)
    assert answer_text(answer).startswith(f"Submitted — https://discord.com/channels/@me/{dm['id']}/")
    assert enlarged.size == (image_one.width * 2, image_one.height * 2)
    job = await harness.redis_jobs(job_of(upscaled))
    assert (job.extra["private"], parent_of(job)) == (True, Parent(job_of(gallery), Derivation.UPSCALE, 1))
    assert await harness.messages() == []


async def test_upscale_of_a_job_no_longer_on_record_says_why_and_runs_nothing(harness: Harness, tmp_path: Path) -> None:
    """Once the job's record has expired, U1 (for this server's moderator, who alone may act on it then) explains
    that an upscale needs the job, and nothing is sent."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        parent = await two_image_result(harness, prompt=DRAWN)
        jid = job_of(parent)
        await harness.redis.delete(JobStore(harness.redis).keys.job(jid))
        answer = await click(harness, parent, f"job:u1:{jid}", harness.mod)
    assert final_message(answer)["content"] == (
        f"Job `{jid}` is no longer on record, so image 1 cannot be upscaled (an upscale starts from the job's "
        "parameters). Allowed: upscaling the images of jobs still on record; this image stays as it is."
    )
    assert harness.emulator.counters.request_count("run") == 1


async def test_retry_of_a_failed_upscale_enlarges_the_image_and_still_names_the_drawing_model(
    harness: Harness, tmp_path: Path
) -> None:
    """An upscale the worker failed keeps its card with Retry; Retry enlarges the same image, and the new result's
    Info still names the model that drew it."""
    async with harness.running(models_file=models_with_upscaler(harness, tmp_path)):
        parent = await two_image_result(harness, prompt=DRAWN)
        harness.emulator.update_scenario(personality="fail-plain")
        await click(harness, parent, f"job:u1:{job_of(parent)}", harness.alice)
        found = await harness.wait_for_messages(
            lambda messages: any(
                button.startswith("job:retry:") for card in cards(messages) for button in buttons(card)
            )
        )
        (card,) = cards(found)
        harness.emulator.update_scenario(personality="esrgan")
        retried = await click(harness, card, f"job:retry:{job_of(card)}", harness.alice)
        upscaled = await nth_result(harness, 2)
        info = await click(harness, upscaled, f"job:info:{job_of(upscaled)}", harness.alice)
        image_one, enlarged = await image_of(harness, parent, 1), await image_of(harness, upscaled)
    assert answer_text(retried).startswith("Submitted")
    assert enlarged.size == (image_one.width * 2, image_one.height * 2)
    assert info_fields(info)["Drawn with"] == DRAWS
