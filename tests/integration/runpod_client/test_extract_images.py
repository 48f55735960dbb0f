"""The extractor on real outputs: every worker shape the emulator produces, and downloads that must be refused."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from runpod_client import (
    FetchPolicy,
    ImageFetchError,
    InvalidImageError,
    Job,
    JobStatus,
    NoImagesError,
    RunPodClient,
    UnsafeURLError,
    extract_images,
    extract_output,
)
from tests.plugins.emulator import poll_job

LOOPBACK_ALLOWED = FetchPolicy(allow_loopback=True, timeout_s=5)
SEED = 4242
WIDTH, HEIGHT = 128, 96

# personality → (images it returns for a request of two, whether each image's seed is known)
SHAPES = {
    "sdxl": (2, True),
    "sdxl-bucket": (2, True),
    "sd-v1": (2, True),
    "sd-v1-base64": (2, True),
    "sdxl-turbo": (2, True),
    "sdxl-turbo-old": (1, False),
    "comfyui": (2, False),
    "comfyui-s3": (2, False),
    "comfyui-legacy": (1, False),
    "comfyui-legacy-url": (1, False),
    "a1111": (2, True),
    "flux": (1, False),
    "no-progress": (2, True),
}


async def finished_job(client: RunPodClient, personality: str, **extra: object) -> Job:
    """Run a job of a personality to its end."""
    job_input = {
        "prompt": "a snail on a skateboard",
        "seed": SEED,
        "width": WIDTH,
        "height": HEIGHT,
        "num_images": 2,
        "emulator": {"personality": personality, "execution_s": 0.02},
        **extra,
    }
    submitted = await client.run(job_input)
    job, _ = await poll_job(client, submitted.id)
    return job


@pytest.mark.parametrize("personality", sorted(SHAPES))
async def test_every_worker_output_shape_yields_its_png_images(
    personality: str, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """Each shape gives back the real PNGs the worker drew, at the requested size, with seeds when known."""
    count, seeds_known = SHAPES[personality]
    job = await finished_job(emulator_client, personality)
    images = await extract_images(job.output, session=emulator_session, policy=LOOPBACK_ALLOWED)
    assert len(images) == count
    for image in images:
        assert image.media_type == "image/png"
        assert image.suffix == ".png"
        assert Image.open(io.BytesIO(image.data)).size == (WIDTH, HEIGHT)
    if seeds_known:
        assert images[0].seed == SEED
    else:
        assert {image.seed for image in images} == {None}


async def test_images_of_a_batch_are_distinct(
    emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """Two images of one job are two different pictures, in order."""
    job = await finished_job(emulator_client, "sd-v1-base64")
    first, second = await extract_images(job.output, session=emulator_session)
    assert first.data != second.data
    assert (first.seed, second.seed) == (SEED, SEED + 1)


async def test_comfyui_without_images_says_so(
    emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """ComfyUI's success_no_images is 'finished without any image'."""
    job = await finished_job(emulator_client, "comfyui-no-images")
    with pytest.raises(NoImagesError, match="without any image"):
        await extract_images(job.output, session=emulator_session)


async def test_completed_without_output_says_so(
    emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """A COMPLETED job whose output was dropped has no image."""
    job = await finished_job(emulator_client, "completed-no-output")
    assert job.status == JobStatus.COMPLETED
    with pytest.raises(NoImagesError):
        await extract_images(job.output, session=emulator_session)


async def test_loopback_urls_are_refused_by_default(
    emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """Without allow_loopback, an image URL on 127.0.0.1 is refused before any download."""
    job = await finished_job(emulator_client, "flux")
    with pytest.raises(UnsafeURLError, match="loopback"):
        await extract_images(job.output, session=emulator_session)


async def test_oversized_personality_serves_a_25_megabyte_png(
    emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """The oversized personality hands out a real PNG of at least 25 MB behind image_url."""
    job = await finished_job(emulator_client, "oversized")
    policy = FetchPolicy(allow_loopback=True, max_bytes=64 * 1024 * 1024, timeout_s=10)
    (image,) = await extract_images(job.output, session=emulator_session, policy=policy)
    assert len(image.data) >= 25_000_000
    assert image.media_type == "image/png"


async def test_image_whose_pixels_cannot_be_decoded_is_refused(
    emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """A PNG with valid checksums (Pillow's verify passes) but corrupt pixel data is refused as undecodable."""
    job = await finished_job(emulator_client, "corrupt-pixels")
    with pytest.raises(InvalidImageError, match="the worker returned an image that cannot be decoded"):
        await extract_images(job.output, session=emulator_session)


async def test_base64_images_beyond_the_cap_are_not_returned(
    emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """A worker that returns 11 images with a cap of 4: the first 4 come back, and the 11 found are counted."""
    forced = {"personality": "sdxl", "images": 11, "execution_s": 0.02}
    job = await finished_job(emulator_client, "sdxl", emulator=forced)
    extraction = await extract_output(job.output, session=emulator_session, max_images=4)
    assert extraction.found == 11
    assert [image.seed for image in extraction.images] == [SEED] * 4
    assert len({image.data for image in extraction.images}) == 4


async def test_image_bytes_option_enlarges_base64_images(
    emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """input.emulator.image_bytes makes any personality's images at least that large."""
    submitted = await emulator_client.run(
        {"prompt": "big", "emulator": {"personality": "sdxl", "image_bytes": 2_000_000, "execution_s": 0.02}}
    )
    job, _ = await poll_job(emulator_client, submitted.id)
    (image,) = await extract_images(job.output, session=emulator_session)
    assert len(image.data) >= 2_000_000


class ImageServer:
    """A local server with the awkward cases: big files, redirects, non-images, errors, slowness."""

    def __init__(self, png: bytes) -> None:
        self.png = png
        self.url = ""
        self.images_served = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/image.png", self.image)
        app.router.add_get("/big.png", self.big)
        app.router.add_get("/big-chunked.png", self.big_chunked)
        app.router.add_get("/page.html", self.page)
        app.router.add_get("/missing.png", self.missing)
        app.router.add_get("/to-private", self.to_private)
        app.router.add_get("/to-image", self.to_image)
        app.router.add_get("/slow.png", self.slow)
        return app

    async def image(self, request: web.Request) -> web.Response:
        self.images_served += 1
        return web.Response(body=self.png, content_type="image/png")

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=self.png + b"\0" * 2_000_000, content_type="image/png")

    async def big_chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(self.png)
        for _ in range(40):
            await response.write(b"\0" * 65536)
        await response.write_eof()
        return response

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not an image</html>", content_type="image/png")

    async def missing(self, request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def to_private(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("http://10.20.30.40/image.png")

    async def to_image(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/image.png")

    async def slow(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(self.png[:10])
        await asyncio.sleep(2)
        return response


@pytest.fixture
async def image_host() -> AsyncIterator[ImageServer]:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    server = ImageServer(buffer.getvalue())
    runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
def image_server(image_host: ImageServer) -> str:
    return image_host.url


async def test_image_urls_beyond_the_cap_are_never_downloaded(
    image_host: ImageServer, emulator_session: aiohttp.ClientSession
) -> None:
    """An output listing 11 image URLs with a cap of 4: 4 are downloaded and returned, the other 7 never fetched."""
    output = {"images": [f"{image_host.url}/image.png?n={index}" for index in range(11)]}
    extraction = await extract_output(output, session=emulator_session, policy=LOOPBACK_ALLOWED, max_images=4)
    assert extraction.found == 11
    assert len(extraction.images) == 4
    assert image_host.images_served == 4


async def test_image_url_is_downloaded_when_loopback_is_allowed(
    image_server: str, emulator_session: aiohttp.ClientSession
) -> None:
    """A plain image URL gives its PNG."""
    (image,) = await extract_images(
        {"image_url": f"{image_server}/image.png"}, session=emulator_session, policy=LOOPBACK_ALLOWED
    )
    assert Image.open(io.BytesIO(image.data)).size == (8, 8)


async def test_redirect_within_allowed_hosts_is_followed(
    image_server: str, emulator_session: aiohttp.ClientSession
) -> None:
    """A redirect to an allowed address is followed to the image."""
    (image,) = await extract_images(f"{image_server}/to-image", session=emulator_session, policy=LOOPBACK_ALLOWED)
    assert image.media_type == "image/png"


async def test_redirect_to_a_private_address_is_refused(
    image_server: str, emulator_session: aiohttp.ClientSession
) -> None:
    """A redirect towards a private address is refused, even from an allowed host."""
    with pytest.raises(UnsafeURLError, match="private"):
        await extract_images(f"{image_server}/to-private", session=emulator_session, policy=LOOPBACK_ALLOWED)


@pytest.mark.parametrize("path", ["/big.png", "/big-chunked.png"])
async def test_oversized_download_is_refused(
    path: str, image_server: str, emulator_session: aiohttp.ClientSession
) -> None:
    """A download over max_bytes stops with an error, whether or not the size was announced."""
    policy = FetchPolicy(allow_loopback=True, max_bytes=1_000_000)
    with pytest.raises(ImageFetchError, match="larger than"):
        await extract_images(f"{image_server}{path}", session=emulator_session, policy=policy)


async def test_url_serving_something_else_is_not_an_image(
    image_server: str, emulator_session: aiohttp.ClientSession
) -> None:
    """Bytes that are not an image are refused whatever the Content-Type says."""
    with pytest.raises(InvalidImageError):
        await extract_images(f"{image_server}/page.html", session=emulator_session, policy=LOOPBACK_ALLOWED)


async def test_http_error_is_a_fetch_error(image_server: str, emulator_session: aiohttp.ClientSession) -> None:
    """A 404 on the image URL is an ImageFetchError naming the status."""
    with pytest.raises(ImageFetchError, match="404"):
        await extract_images(f"{image_server}/missing.png", session=emulator_session, policy=LOOPBACK_ALLOWED)


async def test_slow_download_times_out(image_server: str, emulator_session: aiohttp.ClientSession) -> None:
    """A download slower than the timeout is abandoned."""
    policy = FetchPolicy(allow_loopback=True, timeout_s=0.2)
    with pytest.raises(ImageFetchError, match="longer than"):
        await extract_images(f"{image_server}/slow.png", session=emulator_session, policy=policy)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.7/image.png", "private"),
        ("http://192.168.1.20:8080/image.png", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/image.png", "loopback"),
        ("http://localhost/image.png", "loopback"),
        ("http://[::ffff:127.0.0.1]/image.png", "loopback"),
    ],
)
async def test_private_and_local_addresses_are_refused(
    url: str, reason: str, emulator_session: aiohttp.ClientSession
) -> None:
    """URLs that resolve to private, link-local or loopback addresses are never fetched by default."""
    with pytest.raises(UnsafeURLError, match=reason):
        await extract_images([{"image": url, "seed": 1}], session=emulator_session)


async def test_non_http_url_is_refused(emulator_session: aiohttp.ClientSession) -> None:
    """An s3:// URL cannot be downloaded and says so."""
    with pytest.raises(ImageFetchError, match="s3://"):
        await extract_images({"image_url": "s3://bucket/key.png"}, session=emulator_session)
