"""The image an img2img job starts from: fetched with the checks worker outputs get, fitted to the job, encoded.

A member's source image is a link (a Discord attachment, an image the bot posted). Before a paid `/run` it is
fetched through `runpod_client.outputs.download_image` (the same address guard, size cap and time-out as worker
outputs), its format is read from its bytes (PNG, JPEG, WebP or GIF) and its pixels decoded; then it is encoded as
the model's worker takes it (`ImageInputSpec.encoding`):
- a URL (worker-sdxl, worker-stable_diffusion_v1 download it themselves): the checked link is sent as it is. Those
  workers draw at the source image's own size, and the bot cannot resize what it does not send, so a source of more
  pixels than the worker can take is refused instead;
- a data URI or base64 (worker-comfyui): the image is cropped and resized to the job's width and height (the
  workflow draws at those) and sent as PNG inside the job's input.
The whole input is then measured against RunPod's request limit. Every refusal is a `SourceImageError`, an
`InvalidRequestError` whose message a member can read. Decoding, resizing and encoding run in a worker thread.

An upscale (`ModelConfig.is_upscaler`) sends the image at its own size, since the upscaler enlarges what it gets:
the checked link to worker-esrgan, which downloads it, or a PNG in the input to a ComfyUI workflow. The job's size
becomes the image's size times the factor, and an image that would grow past `MAX_UPSCALED_PIXELS` is refused.

The job record keeps the source's link only (`SourceImage`): the encoded image lives in memory between this fetch
and the `/run` that carries it, so Redis never holds image bytes, and a re-roll fetches the link again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import aiohttp

from jobs.presets import (
    IMAGE_AS_DATA_URI,
    IMAGE_AS_URL,
    ImageEncoding,
    ImageInputSpec,
    ImageRequest,
    InvalidRequestError,
    ModelConfig,
    RequestOptions,
    Size,
)
from jobs.service import JobService, Prepared, SourcePreparer
from jobs.text import N_, stored
from runpod_client.outputs import (
    FetchPolicy,
    ImageFetchError,
    ImageTooLargeError,
    InvalidImageError,
    UnsafeURLError,
    download_image,
    image_from_bytes,
)

# The templates of this module's texts for members (`jobs.text.stored`), registered when the module is
# imported, so any process recognises them in a kept text and translates them.
CANNOT_BE_USED_DOES_NOT = stored("cannot be used: {name} does not start from an image")
CANNOT_BE_UPSCALED_IS_NOT = stored("cannot be upscaled: {name} is not an upscaler")
IS_X_AND_X_LARGER = stored("is {width}x{height}, and {scale:g}x larger it would be {enlarged}, more than the bot posts")
IMAGES_OF_AT_MOST_PIXELS = stored("images of at most {int} pixels (such as {example}) for {name}")
MAKES_THE_JOB_S_REQUEST = stored("makes the job's request {size:.1f} MB")
REQUESTS_OF_AT_MOST_MB = stored(
    "requests of at most {RUN_PAYLOAD_LIMIT_BYTES} MB (RunPod's limit for /run); use a smaller image"
)
WAS_NOT_FETCHED = stored("was not fetched ({exc})")
IS_LARGER_THAN = stored("is larger than {limit}")
OF_AT_MOST = stored("{ALLOWED_FORMATS} of at most {limit}")
COULD_NOT_BE_FETCHED = stored("could not be fetched ({exc})")
IS_NOT = stored("is not {ALLOWED_FORMATS}")
IS_X_MORE_PIXELS_THAN = stored("is {width}x{height}, more pixels than the bot opens")
AT_MOST_MILLION_PIXELS_USE = stored("at most {MAX_SOURCE_DECODE_PIXELS} million pixels; use a smaller image")
OF_ORDINARY_SIZE_USE_A = stored("{ALLOWED_FORMATS} of ordinary size; use a smaller image")
IS_DAMAGED_AND_CANNOT_BE = stored("is damaged and cannot be opened ({name})")
THAT_OPENS = stored("{ALLOWED_FORMATS} that opens")
IS_X_PIXELS_AND_DRAWS = stored("is {width}x{height} ({width2} pixels), and {model_name} draws at the image's own size")
AT_MOST_PIXELS_SUCH_AS = stored("at most {cap} pixels (such as {example}); use a smaller image")

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

# RunPod refuses a /run request body over 10 MB and a /runsync one over 20 MB (RunPod's endpoint docs; worker-comfyui's
# README repeats it: "10MB for /run, 20MB for /runsync"). The smaller one applies to every job: a `sync = true` model
# falls back to /run when all /runsync waits are taken.
RUN_PAYLOAD_LIMIT_BYTES = 10 * 1000 * 1000
RUNSYNC_PAYLOAD_LIMIT_BYTES = 20 * 1000 * 1000
# What the body holds around the input: `{"input": …, "webhook": "<url>", "policy": {…}}`.
ENVELOPE_MARGIN_BYTES = 4 * 1024
# The largest source image fetched: Discord's own upload limit without Nitro is 10 MB; a posted 2048x2048 PNG fits.
MAX_SOURCE_IMAGE_BYTES = 20 * 1024 * 1024
# Decoding more pixels than this takes too much memory for a source image (a phone photo has 12–50 million).
MAX_SOURCE_DECODE_PIXELS = 64 * 1000 * 1000
DEFAULT_SOURCE_FETCH_POLICY = FetchPolicy(max_bytes=MAX_SOURCE_IMAGE_BYTES)
PNG_DATA_URI_PREFIX = "data:image/png;base64,"
ALLOWED_FORMATS = N_("a PNG, JPEG, WebP or GIF image")
MEGABYTE = 1024 * 1024
# The bot's own bound on an upscaled image: 4096x4096, a 1024x1024 result at 4x. Larger files take minutes to post
# and are re-encoded far down to fit Discord's upload limit, which undoes the upscale.
MAX_UPSCALED_PIXELS = 4096 * 4096


class SourceImageError(InvalidRequestError):
    """The source image cannot be used: the message says what was wrong and what to do (`image` is the option)."""

    def __init__(self, problem: str, allowed: str) -> None:
        super().__init__("image", problem, allowed)


async def prepare_img2img(
    service: JobService,
    options: RequestOptions,
    model: str | None = None,
    *,
    session: aiohttp.ClientSession,
    policy: FetchPolicy = DEFAULT_SOURCE_FETCH_POLICY,
) -> Prepared:
    """Resolve a request and, when it starts from an image, fetch and encode that image for the model's worker.

    The result goes to `JobService.submit`. Raises `InvalidRequestError` (a `SourceImageError` for the image).
    """
    prepared = service.prepare(options, model)
    request = await prepare_source_image(prepared.model, prepared.request, session=session, policy=policy)
    return replace(prepared, request=request)


def source_preparer(
    session: aiohttp.ClientSession, policy: FetchPolicy = DEFAULT_SOURCE_FETCH_POLICY
) -> SourcePreparer:
    """What `JobService(prepare_source=...)` calls to fetch and check a source image before `/run`: the composition
    root gives it the process's HTTP session and the operator's fetch policy."""

    async def prepare(model: ModelConfig, request: ImageRequest) -> ImageRequest:
        return await prepare_source_image(model, request, session=session, policy=policy)

    return prepare


async def prepare_source_image(
    model: ModelConfig,
    request: ImageRequest,
    *,
    session: aiohttp.ClientSession,
    policy: FetchPolicy = DEFAULT_SOURCE_FETCH_POLICY,
) -> ImageRequest:
    """The request with its source image fetched, checked and encoded for `model`'s worker (unchanged without one).

    `policy` says which addresses may be fetched (pass the core's `fetch_policy`); its size cap is lowered to
    `MAX_SOURCE_IMAGE_BYTES`. Raises `SourceImageError` when the image cannot be fetched, is not an image, is too
    large for the worker, or makes the job's request larger than RunPod accepts.
    """
    source = request.source
    if source is None:
        return request
    if model.is_upscaler:
        return await prepare_upscale_source(model, request, session=session, policy=policy)
    spec = model.image_input
    if spec is None:
        raise SourceImageError(CANNOT_BE_USED_DOES_NOT.format(name=model.name), _able(model))
    # The caller's policy (the operator's address rules for worker outputs), capped at the source image's size.
    capped = replace(policy, max_bytes=min(policy.max_bytes, MAX_SOURCE_IMAGE_BYTES))
    data = await fetch_source(source.url, session=session, policy=capped)
    encoded = await asyncio.to_thread(encode_source, data, request.size, spec, model.name)
    prepared = replace(request, source=replace(source, encoded=source.url if encoded is None else encoded))
    await _check_request_size(model, prepared)
    return prepared


async def prepare_upscale_source(
    model: ModelConfig,
    request: ImageRequest,
    *,
    session: aiohttp.ClientSession,
    policy: FetchPolicy = DEFAULT_SOURCE_FETCH_POLICY,
) -> ImageRequest:
    """An upscale's request with its image fetched, checked and encoded at its own size for the upscaler, and its
    size set to the image's times the factor. Raises `SourceImageError`."""
    source, spec, scale = request.source, model.upscale_input, request.scale
    if source is None or spec is None or scale is None:
        raise SourceImageError(CANNOT_BE_UPSCALED_IS_NOT.format(name=model.name), N_("an upscaler model"))
    capped = replace(policy, max_bytes=min(policy.max_bytes, MAX_SOURCE_IMAGE_BYTES))
    data = await fetch_source(source.url, session=session, policy=capped)
    encoded, (width, height) = await asyncio.to_thread(encode_upscale_source, data, spec.encoding)
    enlarged = Size(round(width * scale), round(height * scale))
    if enlarged.width * enlarged.height > MAX_UPSCALED_PIXELS:
        most = MAX_UPSCALED_PIXELS / (scale * scale)
        raise SourceImageError(
            IS_X_AND_X_LARGER.format(width=width, height=height, scale=scale, enlarged=enlarged),
            IMAGES_OF_AT_MOST_PIXELS.format(int=int(most), example=_example(int(most)), name=model.name),
        )
    prepared = replace(
        request, size=enlarged, source=replace(source, encoded=source.url if encoded is None else encoded)
    )
    await _check_request_size(model, prepared)
    return prepared


async def _check_request_size(model: ModelConfig, prepared: ImageRequest) -> None:
    """Refuse a request RunPod would refuse for its size (10 MB for /run)."""
    size = await asyncio.to_thread(request_bytes, model, prepared)
    if size > RUN_PAYLOAD_LIMIT_BYTES:
        raise SourceImageError(
            MAKES_THE_JOB_S_REQUEST.format(size=size / 1_000_000),
            REQUESTS_OF_AT_MOST_MB.format(RUN_PAYLOAD_LIMIT_BYTES=RUN_PAYLOAD_LIMIT_BYTES // 1_000_000),
        )


async def fetch_source(url: str, *, session: aiohttp.ClientSession, policy: FetchPolicy) -> bytes:
    """The bytes at `url`, fetched under `policy` (address guard, size cap, time-out), or `SourceImageError`."""
    try:
        return await download_image(url, session=session, policy=policy)
    except UnsafeURLError as exc:
        raise SourceImageError(
            WAS_NOT_FETCHED.format(exc=exc),
            N_("an image at a public internet address, such as one uploaded to Discord"),
        ) from None
    except ImageTooLargeError as exc:
        limit = _megabytes(exc.max_bytes)
        raise SourceImageError(
            IS_LARGER_THAN.format(limit=limit),
            OF_AT_MOST.format(ALLOWED_FORMATS=ALLOWED_FORMATS, limit=limit),
        ) from None
    except ImageFetchError as exc:
        raise SourceImageError(
            COULD_NOT_BE_FETCHED.format(exc=exc),
            N_("a link that still works (upload the image again)"),
        ) from None


def encode_source(data: bytes, size: Size, spec: ImageInputSpec, model_name: str) -> str | None:
    """Check the image and encode it as the worker takes it: None for a worker that downloads the link itself, else
    the image fitted to `size` as a PNG data URI or base64. CPU-bound: call it in a worker thread."""
    # Imported here: a process that never prepares a source image does not load Pillow for it.
    from PIL import Image, ImageOps

    with _opened(data) as opened:
        if spec.encoding == IMAGE_AS_URL:
            opened.load()  # the whole file decodes: a truncated image would fail on the paid worker instead
            _check_drawn_size(*opened.size, spec, model_name)
            return None
        fitted = ImageOps.fit(
            ImageOps.exif_transpose(opened).convert("RGB"), (size.width, size.height), Image.Resampling.LANCZOS
        )
    return _png_text(fitted, spec.encoding)


def encode_upscale_source(data: bytes, encoding: ImageEncoding) -> tuple[str | None, tuple[int, int]]:
    """Check an image to upscale and encode it at its own size: None for a worker that downloads the link itself,
    else a PNG data URI or base64; with the image's upright width and height. CPU-bound: call it in a thread."""
    from PIL import ImageOps

    with _opened(data) as opened:
        upright = ImageOps.exif_transpose(opened)
        upright.load()  # the whole file decodes: a truncated image would fail on the paid worker instead
    if encoding == IMAGE_AS_URL:
        # worker-esrgan reads the file with cv2.imread(IMREAD_UNCHANGED), which ignores EXIF orientation.
        return None, opened.size
    return _png_text(upright.convert("RGB"), encoding), upright.size


@contextlib.contextmanager
def _opened(data: bytes) -> Iterator[PILImage]:
    """The image, opened once its type and pixel count are allowed; a file Pillow cannot decode within the block
    is refused as damaged, one with too many pixels as such."""
    from PIL import Image

    try:
        image_from_bytes(data)
    except InvalidImageError:
        raise SourceImageError(IS_NOT.format(ALLOWED_FORMATS=ALLOWED_FORMATS), ALLOWED_FORMATS) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
        width, height = opened.size
        if width * height > MAX_SOURCE_DECODE_PIXELS:
            raise SourceImageError(
                IS_X_MORE_PIXELS_THAN.format(width=width, height=height),
                AT_MOST_MILLION_PIXELS_USE.format(MAX_SOURCE_DECODE_PIXELS=MAX_SOURCE_DECODE_PIXELS // 1_000_000),
            )
        yield opened
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SourceImageError(
            N_("has more pixels than any image should"),
            OF_ORDINARY_SIZE_USE_A.format(ALLOWED_FORMATS=ALLOWED_FORMATS),
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise SourceImageError(
            IS_DAMAGED_AND_CANNOT_BE.format(name=type(exc).__name__),
            THAT_OPENS.format(ALLOWED_FORMATS=ALLOWED_FORMATS),
        ) from None


def _png_text(image: PILImage, encoding: ImageEncoding) -> str:
    """The image as a PNG, in the encoding the worker takes (a data URI or bare base64)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    text = base64.b64encode(buffer.getvalue()).decode("ascii")
    return PNG_DATA_URI_PREFIX + text if encoding == IMAGE_AS_DATA_URI else text


def _check_drawn_size(width: int, height: int, spec: ImageInputSpec, model_name: str) -> None:
    """A worker that downloads the source draws at its size: refuse more pixels than it takes."""
    cap = spec.max_source_pixels
    if cap is not None and width * height > cap:
        raise SourceImageError(
            IS_X_PIXELS_AND_DRAWS.format(width=width, height=height, width2=width * height, model_name=model_name),
            AT_MOST_PIXELS_SUCH_AS.format(cap=cap, example=_example(cap)),
        )


def request_bytes(model: ModelConfig, request: ImageRequest) -> int:
    """The size of the job's request body to RunPod, with room for the webhook and policy around the input."""
    return len(json.dumps({"input": model.build_input(request)}).encode()) + ENVELOPE_MARGIN_BYTES


def _example(pixels: int) -> str:
    """A size of at most `pixels` pixels to name in a refusal: 1024x768 for SD 1.5's cap, else a square."""
    if pixels == 1024 * 768:
        return "1024x768"
    side = int(pixels**0.5)
    return f"{side}x{side}"


def _megabytes(count: int) -> str:
    return f"{count / MEGABYTE:g} MB"


def _able(model: ModelConfig) -> str:
    return ", ".join(model.image_models) if model.image_models else N_("none of the configured models")
