"""A source image is checked before any paid job: what is refused, and how it is sent to each kind of worker."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from jobs.presets import COMFYUI_IMAGE, IMAGE_AS_BASE64, IMAGE_AS_URL, SDXL_IMAGE, Size
from jobs.source_image import (
    MAX_SOURCE_DECODE_PIXELS,
    PNG_DATA_URI_PREFIX,
    SourceImageError,
    encode_source,
    encode_upscale_source,
)


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def with_header_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its header claiming another size (a valid CRC): what a crafted file can say before decoding."""
    ihdr_start = 8 + 4 + 4  # signature, chunk length, chunk type
    header = struct.pack(">II", width, height) + data[ihdr_start + 8 : ihdr_start + 13]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    return data[:ihdr_start] + header + crc + data[ihdr_start + 17 :]


Encoder = Callable[[bytes], object]


def encoders() -> list[tuple[str, Encoder]]:
    return [
        ("img2img", lambda data: encode_source(data, Size(64, 64), COMFYUI_IMAGE, "comfy")),
        ("upscale", lambda data: encode_upscale_source(data, IMAGE_AS_BASE64)),
    ]


@pytest.mark.parametrize(("name", "encode"), encoders())
def test_a_file_that_is_not_an_image_is_refused_naming_the_formats(name: str, encode: Encoder) -> None:
    """A text file sent as the image is refused, saying which formats are allowed."""
    with pytest.raises(SourceImageError, match="is not"):
        encode(b"hello, not an image at all")


@pytest.mark.parametrize(("name", "encode"), encoders())
def test_a_truncated_image_is_refused_as_damaged(name: str, encode: Encoder) -> None:
    """An image cut off halfway is refused as damaged before any worker would fail on it."""
    data = png(300, 300)
    with pytest.raises(SourceImageError, match="is damaged and cannot be opened"):
        encode(data[: len(data) // 2])


@pytest.mark.parametrize(("name", "encode"), encoders())
def test_an_image_claiming_too_many_pixels_is_refused_unopened(name: str, encode: Encoder) -> None:
    """A header that claims more pixels than the bot opens is refused with the limit, without decoding it."""
    side = int(MAX_SOURCE_DECODE_PIXELS**0.5) + 1
    with pytest.raises(SourceImageError, match="more pixels than the bot opens"):
        encode(with_header_size(png(), side, side))


def test_a_url_worker_gets_no_encoding_and_a_too_large_source_is_refused() -> None:
    """worker-sdxl downloads the link itself: a source it may draw is passed on, a larger one refused by size."""
    assert encode_source(png(), Size(1024, 1024), SDXL_IMAGE, "sdxl") is None
    assert SDXL_IMAGE.max_source_pixels is not None
    side = int(SDXL_IMAGE.max_source_pixels**0.5) + 1
    with pytest.raises(SourceImageError, match="draws at the image's own size"):
        encode_source(png(side, side), Size(1024, 1024), SDXL_IMAGE, "sdxl")


def test_a_data_uri_worker_gets_the_image_fitted_to_the_jobs_size() -> None:
    """worker-comfyui gets a PNG data URI of the image fitted to the job's width and height."""
    encoded = encode_source(png(300, 100), Size(128, 96), COMFYUI_IMAGE, "comfy")
    assert encoded is not None
    assert encoded.startswith(PNG_DATA_URI_PREFIX)
    sent = Image.open(io.BytesIO(base64.b64decode(encoded.removeprefix(PNG_DATA_URI_PREFIX))))
    assert sent.size == (128, 96)


def test_an_upscale_source_keeps_its_own_size() -> None:
    """An upscaler gets the image at its own size, and the bot learns that size; a URL worker gets no copy."""
    encoded, size = encode_upscale_source(png(80, 60), IMAGE_AS_BASE64)
    assert encoded is not None
    assert size == (80, 60)
    assert Image.open(io.BytesIO(base64.b64decode(encoded))).size == (80, 60)
    assert encode_upscale_source(png(80, 60), IMAGE_AS_URL) == (None, (80, 60))
