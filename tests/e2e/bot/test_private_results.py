"""Results in direct messages: a private job's gallery works there as in a channel, and a result that falls back to
the owner's DM (the channel refused it) is posted there once, however often its delivery is tried."""

from __future__ import annotations

from cogs.jobs_ui import RESULT_NONCE
from tests.e2e.bot.conftest import Harness, answer_text, buttons, final_message, is_ephemeral, job_of, results
from tests.e2e.bot.test_variations import difference, image_of
from tests.fakes.discord import Permission
from tests.fakes.discord.views import InteractionView, MessageView
from tests.waiting import wait_until


async def dm_results(harness: Harness, channel_id: int, count: int) -> list[MessageView]:
    """The DM's messages once it holds `count` messages with images."""
    found: list[MessageView] = []

    async def check() -> bool:
        nonlocal found
        found = await harness.fake.channel_messages(channel_id)
        return len(results(found)) >= count

    await wait_until(check)
    return results(found)


async def click(harness: Harness, message: MessageView, custom_id: str) -> InteractionView:
    return await harness.answered(await harness.fake.click_button(message["id"], custom_id, harness.alice))


async def test_a_private_jobs_gallery_and_its_actions_work_in_the_dm(harness: Harness) -> None:
    """A private two-image job's gallery in the DM has U, V and the job's buttons; V2 starts a private job from image
    2 delivered in the DM, U1 posts image 1 there, Info answers; nothing reaches the channel."""
    async with harness.running():
        await harness.imagine(prompt="a secret garden", private=True, count=2)
        dm = await harness.fake.dm_channel(harness.alice)
        assert dm is not None
        (gallery,) = await dm_results(harness, dm["id"], 1)
        jid = job_of(gallery)
        varied = await click(harness, gallery, f"job:v2:{jid}")
        variation = (await dm_results(harness, dm["id"], 2))[1]
        upscaled = await click(harness, gallery, f"job:u1:{jid}")
        single = (await dm_results(harness, dm["id"], 3))[2]
        info = await click(harness, gallery, f"job:info:{jid}")
        image_two, varied_image = await image_of(harness, gallery, 2), await image_of(harness, variation)
    assert buttons(gallery) == [
        f"job:u1:{jid}",
        f"job:u2:{jid}",
        f"job:v1:{jid}",
        f"job:v2:{jid}",
        f"job:reroll:{jid}",
        f"job:remix:{jid}",
        f"job:info:{jid}",
        f"job:delete:{jid}",
    ]
    assert answer_text(varied).startswith("Submitted")
    child = await harness.redis_jobs(job_of(variation))
    assert (child.extra["private"], child.extra["parent_jid"], child.extra["parent_image"]) == (True, jid, 2)
    assert difference(varied_image, image_two) < 4
    assert answer_text(upscaled).startswith(f"Image 1, on its own: https://discord.com/channels/@me/{dm['id']}/")
    assert len(single["attachments"]) == 1
    assert is_ephemeral(info)
    assert final_message(info)["embeds"][0]["footer"]["text"] == f"job {jid}"
    assert await harness.messages() == []


async def test_a_result_sent_by_dm_because_the_channel_refused_it_is_posted_there_once_on_a_retry(
    harness: Harness,
) -> None:
    """The channel refuses the result, so it goes to the owner's DM; when an earlier attempt had posted it there and
    died before recording it, the retried delivery finds that message instead of posting a second one."""
    harness.emulator.update_scenario(workers=0)
    async with harness.running() as bot:
        jid = await harness.jid_of(await harness.imagine(prompt="a letter by post"))
        await harness.fake.set_bot_permissions(harness.channel_id, Permission.VIEW_CHANNEL)
        # What the earlier attempt did: Discord created the DM result; its id never reached Redis.
        owner = await bot.fetch_user(harness.alice)
        earlier = await owner.send("the earlier attempt's images", nonce=RESULT_NONCE.format(jid=jid))
        harness.emulator.update_scenario(workers=2)

        async def committed() -> bool:
            return (await harness.redis_jobs(jid)).state.value == "DELIVERED"

        await wait_until(committed, timeout_s=15)
        dm = await harness.fake.dm_channel(harness.alice)
        assert dm is not None
        in_dm = await harness.fake.channel_messages(dm["id"])
    assert [message["id"] for message in in_dm] == [earlier.id]
    assert (await harness.redis_jobs(jid)).result_message_ids == [earlier.id]
