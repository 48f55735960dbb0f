"""/imagine end to end: card, progress, images, buttons, and every refusal a member can meet."""

from __future__ import annotations

import io

from PIL import Image

from tests.e2e.bot.conftest import (
    Harness,
    answer_text,
    buttons,
    cards,
    is_ephemeral,
    job_of,
    results,
)


async def test_imagine_posts_a_card_then_the_images_as_a_reply(harness: Harness) -> None:
    """The card appears, is edited as the job moves, and the images arrive as a reply with buttons."""
    async with harness.running():
        answer = await harness.imagine(prompt="a red fox in snow", seed=42, count=2)
        assert is_ephemeral(answer)
        assert "Submitted: job" in answer_text(answer)
        messages = await harness.wait_for_messages(lambda found: bool(results(found)))
    (card,) = cards(messages)
    (result,) = results(messages)
    jid = job_of(card)
    assert result["message_reference"] is not None
    assert int(result["message_reference"]["message_id"]) == card["id"]
    assert len(result["attachments"]) == 2
    for attachment in result["attachments"]:
        data = await harness.fake.attachment_bytes(attachment["url"])
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
    assert buttons(result) == [f"job:reroll:{jid}", f"job:delete:{jid}"]
    titles = [version["embeds"][0]["title"] for version in card["history"]]
    assert titles[0] == "Submitting…"
    assert titles[-1] == "Done"
    assert any(title.startswith("Generating") or title == "Queued" for title in titles[1:-1])
    assert buttons(card) == []
    fields = {field["name"]: field["value"] for field in result["embeds"][0]["fields"]}
    assert fields["Seed"].startswith("42")
    assert "GPU time" in fields


async def test_reroll_makes_a_new_job_with_the_same_parameters_and_a_new_seed(harness: Harness) -> None:
    """Re-roll keeps prompt, size and steps, and changes the seed."""
    async with harness.running():
        await harness.imagine(prompt="a blue whale", seed=7, steps=12)
        messages = await harness.wait_for_messages(lambda found: bool(results(found)))
        (result,) = results(messages)
        jid = job_of(cards(messages)[0])
        click = await harness.fake.click_button(result["id"], f"job:reroll:{jid}", harness.bob)
        answer = await harness.answered(click)
        assert "Submitted: job" in answer_text(answer)
        messages = await harness.wait_for_messages(lambda found: len(results(found)) == 2)
    first, second = [await harness.redis_jobs(job_of(card)) for card in cards(messages)]
    assert first.request["prompt"] == second.request["prompt"] == "a blue whale"
    assert first.request["steps"] == second.request["steps"] == 12
    assert first.request["seed"] != second.request["seed"]
    assert second.user_id == harness.bob
