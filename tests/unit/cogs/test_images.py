"""Fitting images under the upload limit keeps their parameters, and counts them toward the limit."""

from __future__ import annotations

import io
import os

from PIL import Image

from cogs.images import EXIF_IFD, PAYLOAD_MARGIN, USER_COMMENT, fit_uploads
from runpod_client.outputs import ExtractedImage

TEXT = "a lighthouse at dusk\nSteps: 25, CFG scale: 7.5, Seed: 42, Size: 96x96, Model: sdxl"


def noisy_png(side: int = 96) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_png_that_fits_is_posted_as_is_with_its_parameters() -> None:
    """A PNG under the limit keeps its format and pixels and gains the `parameters` text."""
    data = noisy_png()
    (upload,) = await fit_uploads([ExtractedImage(data, "image/png", 42)], "j1", 10 * 1024 * 1024, [TEXT])
    assert not upload.reencoded
    with Image.open(io.BytesIO(upload.data)) as posted, Image.open(io.BytesIO(data)) as original:
        assert posted.text["parameters"] == TEXT  # type: ignore[attr-defined]
        assert posted.tobytes() == original.tobytes()


async def test_parameters_count_toward_the_upload_limit() -> None:
    """A PNG that fits only without its text chunk is re-encoded so that image and parameters fit together."""
    data = noisy_png()
    per_image = len(data) + len(TEXT) // 2
    (upload,) = await fit_uploads([ExtractedImage(data, "image/png", 42)], "j1", PAYLOAD_MARGIN + per_image, [TEXT])
    assert upload.reencoded
    assert len(upload.data) <= per_image


async def test_reencoded_image_keeps_its_parameters_as_exif_user_comment() -> None:
    """A re-encoded WebP or JPEG carries the text as A1111's EXIF UserComment ("UNICODE\\0", UTF-16BE)."""
    data = noisy_png(256)
    (upload,) = await fit_uploads([ExtractedImage(data, "image/png", 42)], "j1", PAYLOAD_MARGIN + 40_000, [TEXT])
    assert upload.reencoded
    with Image.open(io.BytesIO(upload.data)) as posted:
        comment = posted.getexif().get_ifd(EXIF_IFD)[USER_COMMENT]
    assert comment == b"UNICODE\x00" + TEXT.encode("utf-16-be")
