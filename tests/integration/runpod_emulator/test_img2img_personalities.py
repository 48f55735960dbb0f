"""The emulator's workers take a source image as the real ones do, and their images show it; the others ignore it."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from runpod_client import RunPodClient, extract_images
from runpod_client.outputs import FetchPolicy
from runpod_emulator import Emulator
from tests.plugins.emulator import poll_job

ORANGE = (240, 140, 20)
LOOPBACK = FetchPolicy(allow_loopback=True, timeout_s=5)


def orange_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 256), ORANGE).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def source_url() -> AsyncIterator[str]:
    """The URL of an orange 320x256 PNG on a loopback server."""

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=orange_png(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/orange.png", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/orange.png"
    finally:
        await runner.cleanup()


async def run(emulator: Emulator, client: RunPodClient, job_input: dict[str, Any]) -> Any:
    emulator.update_scenario(execution_s=0.02)
    submitted = await client.run(job_input)
    job, _ = await poll_job(client, submitted.id)
    return job


async def first_image(job: Any, session: aiohttp.ClientSession) -> Image.Image:
    assert job.status == "COMPLETED", job.error
    (image, *_) = await extract_images(job.output, session=session, policy=LOOPBACK)
    return Image.open(io.BytesIO(image.data)).convert("RGB")


def is_orange(image: Image.Image) -> bool:
    """Whether the image's top left corner (clear of the emulator's caption) is the source's orange."""
    pixel = image.getpixel((4, 4))
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= 8 for a, b in zip(pixel, ORANGE, strict=True))


async def test_sdxl_draws_from_its_image_url_at_the_sources_size(
    emulator: Emulator, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession, source_url: str
) -> None:
    """worker-sdxl downloads image_url and, like its refiner, draws at the source's size, showing it."""
    job = await run(emulator, emulator_client, {"prompt": "[emulator:sdxl] p", "image_url": source_url, "width": 1024})
    image = await first_image(job, emulator_session)
    assert image.size == (320, 256)
    assert is_orange(image)


async def test_sdxl_fails_a_data_uri_as_diffusers_load_image_does(
    emulator: Emulator, emulator_client: RunPodClient
) -> None:
    """worker-sdxl cannot open a data URI (load_image takes http(s) URLs and files): the job fails, saying so."""
    data_uri = "data:image/png;base64," + base64.b64encode(orange_png()).decode()
    job = await run(emulator, emulator_client, {"prompt": "[emulator:sdxl] p", "image_url": data_uri})
    assert job.status == "FAILED"
    assert "URLs must start with `http://` or `https://`" in str(job.error)


async def test_sd_v1_whose_download_fails_draws_from_text(
    emulator: Emulator, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession, source_url: str
) -> None:
    """worker-stable_diffusion_v1 draws from text when init_image cannot be downloaded (rp_download gives None)."""
    gone = source_url.replace("orange.png", "gone.png")
    job = await run(
        emulator, emulator_client, {"prompt": "[emulator:sd-v1-base64] p", "init_image": gone, "width": 512}
    )
    image = await first_image(job, emulator_session)
    assert image.size[0] == 512
    assert not is_orange(image)


async def test_comfyui_loads_the_uploaded_image_its_workflow_names(
    emulator: Emulator, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """worker-comfyui uploads `images` by name; the LoadImage node naming it makes the result show it."""
    workflow = {"10": {"class_type": "LoadImage", "inputs": {"image": "in.png"}}}
    upload = {"name": "in.png", "image": "data:image/png;base64," + base64.b64encode(orange_png()).decode()}
    job = await run(
        emulator, emulator_client, {"workflow": workflow, "images": [upload], "prompt": "[emulator:comfyui]"}
    )
    assert is_orange(await first_image(job, emulator_session))


async def test_comfyui_fails_a_load_image_of_a_file_never_uploaded(
    emulator: Emulator, emulator_client: RunPodClient
) -> None:
    """A LoadImage node naming no uploaded file fails the job, as ComfyUI's validation does."""
    workflow = {"10": {"class_type": "LoadImage", "inputs": {"image": "missing.png", "text": "[emulator:comfyui]"}}}
    job = await run(emulator, emulator_client, {"workflow": workflow})
    assert job.status == "FAILED"
    assert "LoadImage: Invalid image file: missing.png" in str(job.error)


async def test_flux_ignores_an_image_input(
    emulator: Emulator, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession, source_url: str
) -> None:
    """The public Flux endpoints never read an image: the emulator's Flux draws from the text alone."""
    job = await run(emulator, emulator_client, {"prompt": "[emulator:flux] p", "image_url": source_url, "width": 256})
    image = await first_image(job, emulator_session)
    assert image.size[0] == 256
    assert not is_orange(image)
