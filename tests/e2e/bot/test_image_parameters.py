"""The images the bot posts carry their generation parameters in A1111's `parameters` format."""

from __future__ import annotations

import io

from PIL import Image

from cogs.images import PAYLOAD_MARGIN
from tests.e2e.bot.conftest import Harness, delivered, results

EXIF_IFD = 0x8769
USER_COMMENT = 0x9286


async def test_posted_png_carries_the_parameters_of_its_job(harness: Harness) -> None:
    """Each PNG of a result holds its job's prompt, negative prompt, steps, guidance, seed, size and model."""
    async with harness.running():
        await harness.imagine(prompt="a red fox, in snow", negative="blurry", seed=42, steps=12, guidance=6.5, count=2)
        messages = await harness.wait_for_messages(delivered)
    (result,) = results(messages)
    texts = []
    for attachment in result["attachments"]:
        data = await harness.fake.attachment_bytes(attachment["url"])
        with Image.open(io.BytesIO(data)) as image:
            texts.append(image.text["parameters"])  # type: ignore[attr-defined]
    # worker-sdxl renders the batch from one seed: both images name it.
    expected = (
        "a red fox, in snow\nNegative prompt: blurry\n"
        "Steps: 12, CFG scale: 6.5, Seed: 42, Size: 1024x1024, Model: default"
    )
    assert texts == [expected, expected]


async def test_reencoded_result_carries_the_parameters_in_its_exif(harness: Harness) -> None:
    """An image re-encoded to fit the channel's limit keeps the parameters as A1111's EXIF UserComment."""
    await harness.fake.set_upload_limit(harness.channel_id, PAYLOAD_MARGIN + 12 * 1024)
    async with harness.running():
        await harness.imagine(prompt="a lighthouse at dusk", seed=7, steps=10)
        messages = await harness.wait_for_messages(delivered)
    (result,) = results(messages)
    (attachment,) = result["attachments"]
    assert attachment["filename"].endswith((".webp", ".jpg"))
    data = await harness.fake.attachment_bytes(attachment["url"])
    with Image.open(io.BytesIO(data)) as image:
        comment = image.getexif().get_ifd(EXIF_IFD)[USER_COMMENT]
    assert comment[:8] == b"UNICODE\x00"
    assert comment[8:].decode("utf-16-be") == (
        "a lighthouse at dusk\nSteps: 10, CFG scale: 7.5, Seed: 7, Size: 1024x1024, Model: default"
    )
