"""The API key is kept out of messages and logs, never cut out of the data RunPod returns."""

from __future__ import annotations

import base64
import io
import random

import aiohttp
from PIL import Image

from runpod_client import extract_images
from runpod_emulator import run_emulator
from tests.plugins.emulator import client_for, emulator_config, fast_scenario, poll_job

# As long as a current RunPod key (`rpa_` and 46 characters).
KEY_CHARS = 50


def noisy_png() -> bytes:
    """A small PNG of random pixels: its base64 text is varied enough to hold any key-like run of characters."""
    rng = random.Random(7)
    image = Image.frombytes("RGB", (32, 32), rng.randbytes(32 * 32 * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def test_key_whose_text_occurs_in_a_base64_image_leaves_the_image_intact(
    emulator_session: aiohttp.ClientSession,
) -> None:
    """With a key that happens to occur inside a returned base64 image, the image arrives unaltered and decodes."""
    png = noisy_png()
    encoded = base64.b64encode(png).decode()
    key = encoded[100 : 100 + KEY_CHARS]
    scenario = fast_scenario(custom_output={"images": [encoded]})
    async with run_emulator(emulator_config(scenario, api_key=key)) as emulator:
        client = client_for(emulator, emulator_session)
        submitted = await client.run({"prompt": "[emulator:custom] an image that holds the key"})
        job, _ = await poll_job(client, submitted.id)
    (image,) = await extract_images(job.output, session=emulator_session)
    assert image.data == png
