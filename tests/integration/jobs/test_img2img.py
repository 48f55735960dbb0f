"""img2img through real parts: a source image served over loopback HTTP, fetched and prepared by the bot, submitted
through `JobService` to the emulator, whose result shows which image the job started from."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from jobs.presets import InvalidRequestError, ModelCatalog, RequestOptions, load_catalog
from jobs.service import JobService, RunSettings
from jobs.source_image import MAX_SOURCE_IMAGE_BYTES, SourceImageError, prepare_img2img, source_preparer
from runpod_client.outputs import FetchPolicy
from storage.models import JobState, Requester
from tests.integration.jobs.conftest import FAST_POLICY, LOOPBACK_FETCH, Core, RecordingNotifier, polling, wait_until

MEMBER = Requester(user_id=1001, guild_id=2001, channel_id=3001)
RED = (220, 30, 30)
BLUE = (30, 40, 220)
GREEN = (20, 200, 60)
IMG2IMG_WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "denoise": "{{strength}}"}},
    "10": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
}


def png(colour: tuple[int, int, int], size: tuple[int, int] = (768, 768)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class ImageServer:
    url: str

    def link(self, name: str) -> str:
        return f"{self.url}/{name}"


@pytest.fixture
async def images() -> AsyncIterator[ImageServer]:
    """A loopback server of source images: two plain colours, a large photo, one too large, a page, a gone link."""
    files = {
        "red.png": (png(RED), "image/png"),
        "blue.png": (png(BLUE), "image/png"),
        "green-small.png": (png(GREEN, (640, 480)), "image/png"),
        "photo.png": (png(GREEN, (4032, 3024)), "image/png"),
        "huge.png": (b"\x89PNG\r\n\x1a\n" + bytes(MAX_SOURCE_IMAGE_BYTES), "image/png"),
        "page.png": (b"<!doctype html><title>Not an image</title>", "text/html"),
    }

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        body, content_type = files[name]
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield ImageServer(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def catalog_on(core: Core, tmp_path: Path) -> ModelCatalog:
    """worker-sdxl, SD 1.5 and a ComfyUI img2img workflow, each answered by the emulator's matching personality."""
    (tmp_path / "img2img.json").write_text(json.dumps(IMG2IMG_WORKFLOW))
    endpoint = core.emulator.endpoint_id
    (tmp_path / "models.toml").write_text(
        f'[[models]]\nname = "xl"\nendpoint_id = "{endpoint}"\npreset = "sdxl"\n\n'
        f'[[models]]\nname = "sd"\nendpoint_id = "{endpoint}"\npreset = "sd15"\n\n'
        f'[[models]]\nname = "comfy"\nendpoint_id = "{endpoint}"\npreset = "comfyui"\n'
        'workflow_file = "img2img.json"\ndefaults = { size = "1152x896" }\n\n'
        f'[[models]]\nname = "flux"\nendpoint_id = "{endpoint}"\npreset = "flux"\n'
    )
    return load_catalog(tmp_path / "models.toml", endpoint)


@pytest.fixture
def service(core: Core, tmp_path: Path) -> JobService:
    return JobService(
        core.store, core.clients, catalog_on(core, tmp_path), policy=FAST_POLICY, run_settings=RunSettings()
    )


async def run_img2img(core: Core, service: JobService, model: str, source: str, personality: str) -> Image.Image:
    """Submit an img2img job as a cog would, let the poller deliver it, and return its first image's pixels."""
    options = RequestOptions(prompt=f"[emulator:{personality}] a fox", source_image_url=source)
    prepared = await prepare_img2img(service, options, model, session=core.http, policy=LOOPBACK_FETCH)
    submission = await service.submit(prepared, MEMBER)
    notifier = RecordingNotifier()
    jid = submission.job.jid
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.COMPLETED, result.reason
    return Image.open(io.BytesIO(result.images[0].data)).convert("RGB")


def near(image: Image.Image, colour: tuple[int, int, int]) -> bool:
    """Whether the image's top left corner (clear of the emulator's caption) has the colour."""
    pixel = image.getpixel((8, 8))
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= 8 for a, b in zip(pixel, colour, strict=True))


@pytest.mark.parametrize(("model", "personality"), [("xl", "sdxl"), ("sd", "sd-v1-base64"), ("comfy", "comfyui")])
async def test_result_shows_the_source_image_the_job_started_from(
    core: Core, service: JobService, images: ImageServer, model: str, personality: str
) -> None:
    """A job started from the blue image shows blue, one from the red image shows red, on every img2img worker."""
    from_blue = await run_img2img(core, service, model, images.link("blue.png"), personality)
    from_red = await run_img2img(core, service, model, images.link("red.png"), personality)
    assert near(from_blue, BLUE)
    assert near(from_red, RED)


async def test_comfyui_gets_the_source_resized_to_the_jobs_size(
    core: Core, service: JobService, images: ImageServer
) -> None:
    """The bot fits a 640x480 source to the job's 1152x896 before sending it: the ComfyUI result has the job's size."""
    result = await run_img2img(core, service, "comfy", images.link("green-small.png"), "comfyui")
    assert result.size == (1152, 896)
    assert near(result, GREEN)


async def test_the_job_record_keeps_the_link_and_not_the_image(
    core: Core, service: JobService, images: ImageServer
) -> None:
    """Redis holds the source's link and strength (a re-roll fetches it again), never the image's bytes."""
    source = images.link("blue.png")
    options = RequestOptions(prompt="a fox", source_image_url=source, strength=0.5)
    prepared = await prepare_img2img(service, options, "comfy", session=core.http, policy=LOOPBACK_FETCH)
    submission = await service.submit(prepared, MEMBER)
    job = await core.store.get(submission.job.jid)
    assert job is not None
    assert (job.request["source_image_url"], job.request["strength"]) == (source, 0.5)
    raw = await core.store.redis.hgetall(core.store.keys.job(job.jid))
    assert max(len(value) for value in raw.values()) < 2000


async def refusal(
    core: Core, service: JobService, source: str, model: str = "comfy", policy: FetchPolicy = LOOPBACK_FETCH
) -> str:
    options = RequestOptions(prompt="a fox", source_image_url=source)
    with pytest.raises(SourceImageError) as caught:
        await prepare_img2img(service, options, model, session=core.http, policy=policy)
    assert core.emulator.snapshot()["received"].get("run", 0) == 0
    return str(caught.value)


async def test_a_source_larger_than_the_cap_is_refused_naming_the_cap(
    core: Core, service: JobService, images: ImageServer
) -> None:
    """An image over 20 MB is refused before any job is sent, with the limit."""
    message = await refusal(core, service, images.link("huge.png"))
    assert message == "`image` is larger than 20 MB. Allowed: a PNG, JPEG, WebP or GIF image of at most 20 MB."


async def test_a_source_that_is_not_an_image_is_refused(core: Core, service: JobService, images: ImageServer) -> None:
    """A link to a web page is refused, naming the formats that are accepted."""
    message = await refusal(core, service, images.link("page.png"))
    assert message == "`image` is not a PNG, JPEG, WebP or GIF image. Allowed: a PNG, JPEG, WebP or GIF image."


async def test_a_source_on_a_private_address_is_refused_by_the_guard(
    core: Core, service: JobService, images: ImageServer
) -> None:
    """Without loopback allowed (as in production), a link to the bot's own machine is never fetched."""
    message = await refusal(core, service, images.link("red.png"), policy=FetchPolicy(timeout_s=5))
    assert message.startswith("`image` was not fetched (refusing to download http://127.0.0.1:")
    assert "127.0.0.1 is a loopback address" in message
    assert message.endswith("Allowed: an image at a public internet address, such as one uploaded to Discord.")


async def test_a_source_link_that_is_gone_asks_for_a_new_upload(
    core: Core, service: JobService, images: ImageServer
) -> None:
    """An expired attachment link (HTTP 404) is refused with what to do: upload the image again."""
    message = await refusal(core, service, images.link("expired.png"))
    assert "failed with HTTP 404" in message
    assert message.endswith("Allowed: a link that still works (upload the image again).")


async def test_a_source_larger_than_sd15_draws_is_refused_naming_its_limit(
    core: Core, service: JobService, images: ImageServer
) -> None:
    """SD 1.5 draws at the source's own size: a 4032x3024 photo is refused with the 786432-pixel limit."""
    message = await refusal(core, service, images.link("photo.png"), model="sd")
    assert message == (
        "`image` is 4032x3024 (12192768 pixels), and sd draws at the image's own size. "
        "Allowed: at most 786432 pixels (such as 1024x768); use a smaller image."
    )


async def test_a_request_over_runpods_payload_limit_is_refused_naming_it(
    core: Core, images: ImageServer, tmp_path: Path
) -> None:
    """A workflow plus source image over RunPod's 10 MB for /run is refused before sending, saying to use less."""
    workflow = {**IMG2IMG_WORKFLOW, "99": {"class_type": "Note", "inputs": {"text": "x" * 9_990_000}}}
    (tmp_path / "big.json").write_text(json.dumps(workflow))
    (tmp_path / "models.toml").write_text(
        f'[[models]]\nname = "big"\nendpoint_id = "{core.emulator.endpoint_id}"\npreset = "comfyui"\n'
        'workflow_file = "big.json"\n'
    )
    catalog = load_catalog(tmp_path / "models.toml", core.emulator.endpoint_id)
    service = JobService(core.store, core.clients, catalog, policy=FAST_POLICY, run_settings=RunSettings())
    message = await refusal(core, service, images.link("blue.png"), model="big")
    assert message.startswith("`image` makes the job's request 10.")
    assert message.endswith("Allowed: requests of at most 10 MB (RunPod's limit for /run); use a smaller image.")


async def test_a_text_only_model_refuses_the_image_before_fetching_it(
    core: Core, service: JobService, images: ImageServer
) -> None:
    """Flux takes no image: the refusal names it and the models that do, and nothing is fetched or sent."""
    options = RequestOptions(prompt="a fox", source_image_url=images.link("red.png"))
    with pytest.raises(InvalidRequestError) as caught:
        await prepare_img2img(service, options, "flux", session=core.http, policy=LOOPBACK_FETCH)
    assert str(caught.value) == "`image` cannot be used: flux does not start from an image. Allowed: xl, sd, comfy."


@pytest.mark.parametrize("model", ["xl", "comfy"])
async def test_a_source_image_nobody_checked_is_refused_before_anything_is_recorded(
    core: Core, service: JobService, images: ImageServer, model: str
) -> None:
    """A service that cannot fetch source images refuses one, in words, with no record and no /run."""
    options = RequestOptions(prompt="a fox", source_image_url=images.link("blue.png"))
    with pytest.raises(InvalidRequestError) as caught:
        await service.submit(options, MEMBER, model=model)
    assert str(caught.value) == (
        "`image` cannot be used: this bot is not set up to fetch source images. Allowed: a request without an image."
    )
    assert await core.store.user_recent(MEMBER.user_id) == []
    assert core.emulator.snapshot()["received"].get("run", 0) == 0


@pytest.fixture
def fetching_service(core: Core, tmp_path: Path) -> JobService:
    """The service as the composition root builds it: it fetches and checks a source image itself."""
    return JobService(
        core.store,
        core.clients,
        catalog_on(core, tmp_path),
        policy=FAST_POLICY,
        run_settings=RunSettings(),
        prepare_source=source_preparer(core.http, LOOPBACK_FETCH),
    )


async def test_submit_checks_the_source_link_itself_before_run(
    core: Core, fetching_service: JobService, images: ImageServer
) -> None:
    """A link to a web page given straight to submit is refused as not an image: nothing is recorded or sent."""
    options = RequestOptions(prompt="a fox", source_image_url=images.link("page.png"))
    with pytest.raises(SourceImageError) as caught:
        await fetching_service.submit(options, MEMBER, model="xl")
    assert (
        str(caught.value) == "`image` is not a PNG, JPEG, WebP or GIF image. Allowed: a PNG, JPEG, WebP or GIF image."
    )
    assert await core.store.user_recent(MEMBER.user_id) == []
    assert core.emulator.snapshot()["received"].get("run", 0) == 0


async def test_submit_fetches_the_source_image_itself_and_the_job_starts_from_it(
    core: Core, fetching_service: JobService, images: ImageServer
) -> None:
    """Options with a link, given straight to submit, run a ComfyUI job whose result shows that image."""
    options = RequestOptions(prompt="[emulator:comfyui] a fox", source_image_url=images.link("blue.png"))
    submission = await fetching_service.submit(options, MEMBER, model="comfy")
    notifier = RecordingNotifier()
    jid = submission.job.jid
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.COMPLETED, result.reason
    assert near(Image.open(io.BytesIO(result.images[0].data)).convert("RGB"), BLUE)
