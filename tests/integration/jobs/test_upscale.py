"""Upscale through real parts: a finished job's image n, served where the result shows it, enlarged by an upscaler
model as a job like any other (`JobService.submit_upscale`), tracked and delivered by the poller."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image, ImageChops, ImageStat

from jobs.access import Actor
from jobs.lineage import Derivation, parent_of
from jobs.lineage import Parent as Lineage
from jobs.notifier import JobResult
from jobs.presets import ImageRequest, InvalidRequestError, ModelCatalog, RequestOptions, load_catalog
from jobs.prompt_filter import PromptRules, term_key
from jobs.service import DeniedTermError, JobService, NotAllowedError, NoUpscalerError, QuotaExceededError, RunSettings
from jobs.source_image import SourceImageError, source_preparer
from storage.guilds import GuildSettings
from storage.models import JobState, Requester, TrackedJob
from storage.store import Limits
from tests.integration.jobs.conftest import FAST_POLICY, LOOPBACK_FETCH, Core, RecordingNotifier, polling, wait_until

MEMBER = Requester(user_id=1001, guild_id=2001, channel_id=3001)
DRAWS = "xl"
UPSCALER = "esrgan-2x"
COMFY_UPSCALER = "comfy-2x"
# A ComfyUI upscale workflow whose ImageScaleBy takes the model's factor; the note picks the emulator's personality.
UPSCALE_WORKFLOW = {
    "10": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
    "13": {"class_type": "ImageScaleBy", "inputs": {"image": ["10", 0], "scale_by": "{{scale}}"}},
    "99": {"class_type": "Note", "inputs": {"text": "[emulator:comfyui]"}},
}


@dataclass
class ImageServer:
    """Where the results' images are shown (Discord's CDN, for the bot): files added as a test goes."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)

    def put(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return f"{self.url}/{name}"


@pytest.fixture
async def cdn() -> AsyncIterator[ImageServer]:
    server = ImageServer()

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in server.files:
            raise web.HTTPNotFound()
        return web.Response(body=server.files[name], content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


def catalog_on(core: Core, tmp_path: Path, *, upscalers: bool = True) -> ModelCatalog:
    """worker-sdxl draws; worker-esrgan and a ComfyUI workflow upscale 2x (unless `upscalers` is False)."""
    (tmp_path / "upscale.json").write_text(json.dumps(UPSCALE_WORKFLOW))
    endpoint = core.emulator.endpoint_id
    text = f'[[models]]\nname = "{DRAWS}"\nendpoint_id = "{endpoint}"\npreset = "sdxl"\n'
    if upscalers:
        text += (
            f'\n[[models]]\nname = "{UPSCALER}"\nendpoint_id = "{endpoint}"\npreset = "esrgan"\ntask = "upscale"\n'
            f'scale = 2\n\n[[models]]\nname = "{COMFY_UPSCALER}"\nendpoint_id = "{endpoint}"\npreset = "comfyui"\n'
            'task = "upscale"\nscale = 2\nworkflow_file = "upscale.json"\n'
        )
    (tmp_path / "models.toml").write_text(text)
    return load_catalog(tmp_path / "models.toml", endpoint)


def service_of(
    core: Core, catalog: ModelCatalog, limits: Limits | None = None, denied: tuple[str, ...] = ()
) -> JobService:
    """A service as the composition root builds it: it fetches and checks source images itself."""
    return JobService(
        core.store,
        core.clients,
        catalog,
        policy=FAST_POLICY,
        run_settings=RunSettings(limits=limits or Limits()),
        prompt_rules=PromptRules(GuildSettings(core.store.redis, core.store.keys, term_key), denied),
        prepare_source=source_preparer(core.http, LOOPBACK_FETCH),
    )


@pytest.fixture
def service(core: Core, tmp_path: Path) -> JobService:
    # Jobs without a personality token (worker-esrgan's input has no text) are the emulator's worker-esrgan.
    core.emulator.update_scenario(personality="esrgan")
    return service_of(core, catalog_on(core, tmp_path))


@dataclass(frozen=True)
class Parent:
    job: TrackedJob
    images: list[bytes]


async def finished_parent(core: Core, service: JobService, cdn: ImageServer) -> Parent:
    """A delivered two-image job of the member, its images put where its result shows them."""
    submission = await service.submit(RequestOptions(prompt="[emulator:sdxl] a fox", count=2), MEMBER, model=DRAWS)
    results = await deliver(core, submission.job.jid)
    images = [image.data for image in results.images]
    for index, data in enumerate(images, start=1):
        cdn.put(f"{submission.job.jid}-{index}.png", data)
    return Parent(await service.get(submission.job.jid), images)


async def deliver(core: Core, jid: str) -> JobResult:
    """Run a poller until the job is delivered; its result, which must be COMPLETED."""
    notifier = RecordingNotifier()
    async with polling(core.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished, timeout_s=15)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.COMPLETED, result.reason
    return result


def pixels(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def difference(enlarged: Image.Image, source: Image.Image) -> float:
    """How far the enlarged image, shrunk back to the source's size, is from the source (0: the same)."""
    shrunk = enlarged.resize(source.size, Image.Resampling.BOX)
    return max(ImageStat.Stat(ImageChops.difference(shrunk, source)).mean)


@pytest.mark.parametrize("upscaler", [UPSCALER, COMFY_UPSCALER])
async def test_upscale_of_image_2_is_image_2_at_twice_its_size(
    core: Core, service: JobService, cdn: ImageServer, upscaler: str
) -> None:
    """Upscaling image 2 of a finished job delivers one image twice its size, whose pixels are image 2's."""
    parent = await finished_parent(core, service, cdn)
    link = f"{cdn.url}/{parent.job.jid}-2.png"
    submission = await service.submit_upscale(parent.job, 2, link, MEMBER, upscaler=upscaler)
    (image,) = (await deliver(core, submission.job.jid)).images
    enlarged, second, first = pixels(image.data), pixels(parent.images[1]), pixels(parent.images[0])
    assert enlarged.size == (second.width * 2, second.height * 2)
    assert difference(enlarged, second) < 4
    assert difference(enlarged, first) > 20


async def test_upscale_job_names_its_parent_and_image(core: Core, service: JobService, cdn: ImageServer) -> None:
    """The upscale's record names the job and the image it came from, its factor and enlarged size, not the image."""
    parent = await finished_parent(core, service, cdn)
    link = f"{cdn.url}/{parent.job.jid}-2.png"
    submission = await service.submit_upscale(parent.job, 2, link, MEMBER)
    job = submission.job
    assert parent_of(job) == Lineage(parent.job.jid, Derivation.UPSCALE, 2)
    assert (job.model, job.extra["parent_model"]) == (UPSCALER, DRAWS)
    assert "image_index" not in job.extra
    assert job.request["upscale"] == 2
    assert (job.request["width"], job.request["height"]) == (2048, 2048)
    assert job.request["source_image_url"] == link
    assert job.request["prompt"] == parent.job.request["prompt"]


async def test_without_an_upscaler_upscale_says_so(core: Core, cdn: ImageServer, tmp_path: Path) -> None:
    """With no upscaler configured, an upscale is refused with words the front end can show, nothing started."""
    service = service_of(core, catalog_on(core, tmp_path, upscalers=False))
    parent = await finished_parent(core, service, cdn)
    runs = core.emulator.counters.request_count("run")
    assert service.upscaler() is None
    with pytest.raises(NoUpscalerError, match="This bot has no upscaler model"):
        await service.submit_upscale(parent.job, 1, f"{cdn.url}/{parent.job.jid}-1.png", MEMBER)
    assert core.emulator.counters.request_count("run") == runs


async def test_a_model_that_draws_is_not_an_upscaler(core: Core, service: JobService, cdn: ImageServer) -> None:
    """Naming a model that draws as the upscaler is refused, naming the upscalers there are."""
    parent = await finished_parent(core, service, cdn)
    with pytest.raises(InvalidRequestError) as caught:
        await service.submit_upscale(parent.job, 1, f"{cdn.url}/{parent.job.jid}-1.png", MEMBER, upscaler=DRAWS)
    assert str(caught.value) == (
        f"`model` {DRAWS} draws images and does not upscale them. Allowed: {UPSCALER}, {COMFY_UPSCALER}."
    )


async def test_an_image_too_large_for_runpods_request_limit_is_refused(
    core: Core, service: JobService, cdn: ImageServer
) -> None:
    """A ComfyUI upscale sends the image in the request: one that makes it pass 10 MB is refused, naming the limit,
    before anything is recorded."""
    parent = await finished_parent(core, service, cdn)
    noise = Image.frombytes("RGB", (1800, 1800), os.urandom(1800 * 1800 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG", compress_level=0)
    link = cdn.put("noise.png", buffer.getvalue())
    with pytest.raises(SourceImageError) as caught:
        await service.submit_upscale(parent.job, 1, link, MEMBER, upscaler=COMFY_UPSCALER)
    assert "makes the job's request" in str(caught.value)
    assert "Allowed: requests of at most 10 MB (RunPod's limit for /run); use a smaller image." in str(caught.value)
    assert [job.jid for job in await core.store.user_recent(MEMBER.user_id, limit=10)] == [parent.job.jid]


async def test_an_image_that_would_grow_past_what_the_bot_posts_is_refused(
    core: Core, service: JobService, cdn: ImageServer
) -> None:
    """An image that enlarged would pass 4096x4096 pixels is refused with the largest that may be upscaled."""
    parent = await finished_parent(core, service, cdn)
    buffer = io.BytesIO()
    Image.new("RGB", (2100, 2100), (10, 20, 30)).save(buffer, format="PNG")
    link = cdn.put("wide.png", buffer.getvalue())
    with pytest.raises(SourceImageError) as caught:
        await service.submit_upscale(parent.job, 1, link, MEMBER)
    assert str(caught.value) == (
        "`image` is 2100x2100, and 2x larger it would be 4200x4200, more than the bot posts. Allowed: images of at "
        f"most 4194304 pixels (such as 2048x2048) for {UPSCALER}."
    )


async def test_an_upscale_counts_against_the_members_quota(core: Core, cdn: ImageServer, tmp_path: Path) -> None:
    """An upscale is admitted like any job: with one job at a time and one still running, it is refused."""
    core.emulator.update_scenario(personality="esrgan")
    catalog = catalog_on(core, tmp_path)
    parent = await finished_parent(core, service_of(core, catalog), cdn)
    service = service_of(core, catalog, Limits(user_active=1))
    core.emulator.update_scenario(execution_s=30)
    link = f"{cdn.url}/{parent.job.jid}-1.png"
    await service.submit_upscale(parent.job, 1, link, MEMBER)
    with pytest.raises(QuotaExceededError):
        await service.submit_upscale(parent.job, 2, f"{cdn.url}/{parent.job.jid}-2.png", MEMBER)


async def test_an_upscale_survives_a_restart_mid_job(core: Core, service: JobService, cdn: ImageServer) -> None:
    """The poller that saw the upscale start stops; a new one delivers it, once, enlarged."""
    parent = await finished_parent(core, service, cdn)
    core.emulator.update_scenario(execution_s=0.6)
    submission = await service.submit_upscale(parent.job, 1, f"{cdn.url}/{parent.job.jid}-1.png", MEMBER)
    jid = submission.job.jid
    before = RecordingNotifier()
    async with polling(core.poller(before)):

        async def running() -> bool:
            job = await core.store.get(jid)
            return job is not None and job.state is JobState.RUNNING

        await wait_until(running, timeout_s=10)
    assert jid not in before.finished
    (image,) = (await deliver(core, jid)).images
    assert pixels(image.data).size == (2048, 2048)
    assert core.emulator.counters.request_count("run") == 2


async def test_an_upscale_of_a_prompt_now_denied_is_refused(core: Core, cdn: ImageServer, tmp_path: Path) -> None:
    """The parent's prompt goes through the deny-list again: a term refused since then stops the upscale."""
    core.emulator.update_scenario(personality="esrgan")
    catalog = catalog_on(core, tmp_path)
    parent = await finished_parent(core, service_of(core, catalog), cdn)
    service = service_of(core, catalog, denied=("fox",))
    with pytest.raises(DeniedTermError, match="fox"):
        await service.submit_upscale(parent.job, 1, f"{cdn.url}/{parent.job.jid}-1.png", MEMBER)


async def test_a_private_jobs_image_is_upscaled_by_its_owner_only(
    core: Core, service: JobService, cdn: ImageServer
) -> None:
    """Another member cannot upscale an image of a job delivered privately to its owner; its owner can."""
    parent = await finished_parent(core, service, cdn)
    private = parent.job.model_copy(update={"extra": {**parent.job.extra, "private": True}})
    link = f"{cdn.url}/{parent.job.jid}-1.png"
    stranger = Requester(user_id=1002, guild_id=MEMBER.guild_id, channel_id=MEMBER.channel_id)
    with pytest.raises(NotAllowedError, match="is private: only the member who started it"):
        await service.submit_upscale(private, 1, link, stranger, actor=Actor(1002, MEMBER.guild_id))
    owner = Actor(MEMBER.user_id, MEMBER.guild_id)
    assert (await service.submit_upscale(private, 1, link, MEMBER, actor=owner)).job.extra["parent_jid"] == private.jid


async def test_an_upscale_asked_again_from_its_record_enlarges_the_same_image(
    core: Core, service: JobService, cdn: ImageServer
) -> None:
    """Retry and Re-roll submit a job's stored request again: for an upscale, the same image enlarged again."""
    parent = await finished_parent(core, service, cdn)
    first = await service.submit_upscale(parent.job, 2, f"{cdn.url}/{parent.job.jid}-2.png", MEMBER)
    await deliver(core, first.job.jid)
    options = ImageRequest.from_dict((await service.get(first.job.jid)).request).as_options(keep_seed=True)
    again = await service.submit(options, MEMBER, model=UPSCALER)
    (image,) = (await deliver(core, again.job.jid)).images
    second = pixels(parent.images[1])
    assert pixels(image.data).size == (second.width * 2, second.height * 2)
    assert difference(pixels(image.data), second) < 4
