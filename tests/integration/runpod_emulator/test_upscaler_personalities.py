"""The emulator's upscalers take an image as worker-esrgan and a ComfyUI upscale workflow do, and return it enlarged,
its pixels the source's; worker-esrgan's input is validated as its schema says."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image, ImageChops, ImageStat

from runpod_client import RunPodClient
from runpod_emulator import Emulator
from tests.integration.runpod_emulator.test_img2img_personalities import first_image, run

ORANGE = (240, 140, 20)
BLUE = (30, 40, 220)
SOURCE_SIZE = (160, 128)
ESRGAN = {"personality": "esrgan"}


def two_colour_png() -> bytes:
    """Orange on the left, blue on the right: an enlargement that keeps the picture keeps the halves."""
    image = Image.new("RGB", SOURCE_SIZE, ORANGE)
    image.paste(BLUE, (SOURCE_SIZE[0] // 2, 0, SOURCE_SIZE[0], SOURCE_SIZE[1]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def source_url() -> AsyncIterator[str]:
    """The URL of the two-colour PNG on a loopback server."""

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=two_colour_png(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/two.png", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/two.png"
    finally:
        await runner.cleanup()


def shows_the_source(image: Image.Image) -> bool:
    """Whether the image, shrunk back to the source's size, is the source (no caption, nothing drawn)."""
    source = Image.open(io.BytesIO(two_colour_png())).convert("RGB")
    difference = ImageChops.difference(image.resize(SOURCE_SIZE, Image.Resampling.BOX), source)
    return max(ImageStat.Stat(difference).mean) < 4


def comfy_input(workflow: dict[str, Any]) -> dict[str, Any]:
    upload = {"name": "in.png", "image": "data:image/png;base64," + base64.b64encode(two_colour_png()).decode()}
    loader = {"10": {"class_type": "LoadImage", "inputs": {"image": "in.png"}}}
    note = {"99": {"class_type": "Note", "inputs": {"text": "[emulator:comfyui]"}}}
    return {"workflow": {**loader, **workflow, **note}, "images": [upload]}


async def test_esrgan_returns_its_data_url_enlarged_by_scale(
    emulator: Emulator, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession, source_url: str
) -> None:
    """worker-esrgan downloads data_url and returns it `scale` times larger, as a list of URLs; the pixels are the
    source's."""
    job = await run(emulator, emulator_client, {"data_url": source_url, "scale": 2.0, "emulator": ESRGAN})
    assert isinstance(job.output, list)
    assert all(isinstance(url, str) and url.startswith("http") for url in job.output)
    image = await first_image(job, emulator_session)
    assert image.size == (320, 256)
    assert shows_the_source(image)


@pytest.mark.parametrize(
    "bad",
    [{"scale": 16.0}, {"scale": "2"}, {"model": "4x-UltraSharp"}, {"prompt": "a fox"}, {"data_url": None}],
    ids=["scale-16", "scale-text", "unknown-model", "unknown-name", "no-url"],
)
async def test_esrgan_fails_an_input_its_schema_refuses_as_the_real_handler_does(
    emulator: Emulator, emulator_client: RunPodClient, source_url: str, bad: dict[str, Any]
) -> None:
    """An input worker-esrgan's schema refuses fails the job with the KeyError its handler raises on any error."""
    job_input = {"data_url": source_url, "scale": 2.0, "emulator": ESRGAN, **bad}
    job = await run(emulator, emulator_client, {key: value for key, value in job_input.items() if value is not None})
    assert job.status == "FAILED"
    error = json.loads(str(job.error))
    assert (error["error_type"], error["error_message"]) == ("<class 'KeyError'>", "'validated_input'")


async def test_comfyui_upscale_model_enlarges_by_the_factor_its_file_names(
    emulator: Emulator, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """ImageUpscaleWithModel with 4x-UltraSharp enlarges four times, then ImageScaleBy 0.5 halves it: twice the
    source, its pixels."""
    workflow = {
        "11": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
        "12": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["11", 0], "image": ["10", 0]}},
        "13": {"class_type": "ImageScaleBy", "inputs": {"image": ["12", 0], "scale_by": 0.5}},
    }
    image = await first_image(await run(emulator, emulator_client, comfy_input(workflow)), emulator_session)
    assert image.size == (320, 256)
    assert shows_the_source(image)


async def test_comfyui_refuses_an_image_scale_by_past_its_maximum(
    emulator: Emulator, emulator_client: RunPodClient
) -> None:
    """ImageScaleBy's scale_by goes up to 8.0: 9 fails the job with ComfyUI's validation message."""
    workflow = {"13": {"class_type": "ImageScaleBy", "inputs": {"image": ["10", 0], "scale_by": 9}}}
    job = await run(emulator, emulator_client, comfy_input(workflow))
    assert job.status == "FAILED"
    assert "ImageScaleBy: Value 9 bigger than max of 8.0: scale_by" in str(job.error)
