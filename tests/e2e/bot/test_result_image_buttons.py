"""The per-image buttons (U1…Un, V1…Vn) as older or altered messages carry them, end to end: custom_ids written by
hand still act, and an image number outside 1 to 10 is refused in words rather than left unanswered."""

from __future__ import annotations

import io
from collections.abc import Sequence

import discord

from tests.e2e.bot.conftest import Harness, answer_text, final_message, job_of
from tests.e2e.bot.test_result_variations import two_image_result
from tests.fakes.discord.views import InteractionView, MessageView

SUBMITTED = "Submitted — https://discord.com/channels/"


def runs(harness: Harness) -> int:
    return harness.emulator.counters.request_count("run")


async def post_buttons(
    harness: Harness, client: discord.Client, custom_ids: Sequence[str], files: Sequence[tuple[str, bytes]] = ()
) -> MessageView:
    """A message of the bot's carrying buttons with these custom_ids written by hand (and these images), as an older
    or altered message would."""
    channel = client.get_channel(harness.channel_id)
    assert isinstance(channel, discord.TextChannel)
    view = discord.ui.View(timeout=None)
    for custom_id in custom_ids:
        view.add_item(discord.ui.Button(label=custom_id.split(":")[1].upper(), custom_id=custom_id))
    attached = [discord.File(io.BytesIO(data), filename=name) for name, data in files]
    sent = await channel.send("buttons", view=view, files=attached)
    return await harness.fake.message(sent.id)


async def test_v11_and_u0_are_refused_in_words_and_start_nothing(harness: Harness) -> None:
    """A V or U button naming an image outside 1 to 10 gets a refusal that names the button; nothing runs."""
    async with harness.running() as bot:
        parent = await two_image_result(harness)
        jid = job_of(parent)
        custom_ids = [f"job:v11:{jid}", f"job:u0:{jid}"]
        odd = await post_buttons(harness, bot, custom_ids)
        views: list[InteractionView] = [
            await harness.answered(await harness.fake.click_button(odd["id"], custom_id, harness.alice))
            for custom_id in custom_ids
        ]
    assert [final_message(view)["content"] for view in views] == [
        "**V11** names no image: a result's images are numbered 1 to 10. Nothing was started.",
        "**U0** names no image: a result's images are numbered 1 to 10. Nothing was started.",
    ]
    assert all(view["response"] is not None and view["response"]["ephemeral"] for view in views)
    assert runs(harness) == 1


async def test_u2_and_v2_written_by_hand_on_an_older_message_still_act(harness: Harness) -> None:
    """A message whose buttons carry `job:u2:<jid>` and `job:v2:<jid>` built by hand, as results posted before an
    upgrade carry them: U2 posts its image 2 alone, V2 starts a variation of it."""
    async with harness.running() as bot:
        parent = await two_image_result(harness)
        jid = job_of(parent)
        images = [
            (attachment["filename"], await harness.fake.attachment_bytes(attachment["url"]))
            for attachment in parent["attachments"]
        ]
        older = await post_buttons(harness, bot, [f"job:u2:{jid}", f"job:v2:{jid}"], images)
        upscale = await harness.answered(await harness.fake.click_button(older["id"], f"job:u2:{jid}", harness.alice))
        vary = await harness.answered(await harness.fake.click_button(older["id"], f"job:v2:{jid}", harness.alice))
    assert answer_text(upscale).startswith("Image 2, on its own: https://discord.com/channels/"), answer_text(upscale)
    assert answer_text(vary).startswith(SUBMITTED), answer_text(vary)
    assert runs(harness) == 2
