"""Fitting images under a channel's upload limit: re-encode (WebP, then JPEG), then downscale. Never drop one."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from runpod_client.outputs import ExtractedImage

# Room left for the message's JSON payload and multipart framing inside the limit.
PAYLOAD_MARGIN = 64 * 1024
WEBP_QUALITY = 90
JPEG_QUALITIES = (90, 80, 70)
DOWNSCALE_STEP = 0.75
MIN_SIDE = 64


@dataclass(frozen=True)
class Upload:
    """One image ready to attach."""

    data: bytes
    filename: str
    seed: int | None
    reencoded: bool = False


async def fit_uploads(images: Sequence[ExtractedImage], stem: str, limit_bytes: int) -> list[Upload]:
    """The images as attachments whose total stays under `limit_bytes` (Pillow work runs in a thread)."""
    budget = max(limit_bytes - PAYLOAD_MARGIN, 1)
    per_image = budget // max(1, len(images))
    uploads = []
    for index, image in enumerate(images, start=1):
        name = f"{stem}-{index}"
        if len(image.data) <= per_image:
            uploads.append(Upload(image.data, image.filename(name), image.seed))
        else:
            data, suffix = await asyncio.to_thread(shrink, image.data, per_image)
            uploads.append(Upload(data, f"{name}{suffix}", image.seed, reencoded=True))
    return uploads


def shrink(data: bytes, limit: int) -> tuple[bytes, str]:
    """Re-encode and, if still needed, downscale until the image fits in `limit` bytes."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image = opened.convert("RGBA" if opened.mode in ("RGBA", "LA", "P") else "RGB")
    while True:
        encoded = _smallest_encoding(image, limit)
        if encoded is not None:
            return encoded
        width, height = image.size
        if min(width, height) * DOWNSCALE_STEP < MIN_SIDE:
            # A tiny JPEG always fits any limit Discord has; this is the last resort.
            return _encode(image.convert("RGB").resize((MIN_SIDE, MIN_SIDE)), "JPEG", JPEG_QUALITIES[-1]), ".jpg"
        image = image.resize((int(width * DOWNSCALE_STEP), int(height * DOWNSCALE_STEP)), Image.Resampling.LANCZOS)


def _smallest_encoding(image: Image.Image, limit: int) -> tuple[bytes, str] | None:
    webp = _encode(image, "WEBP", WEBP_QUALITY)
    if len(webp) <= limit:
        return webp, ".webp"
    rgb = image.convert("RGB")
    for quality in JPEG_QUALITIES:
        jpeg = _encode(rgb, "JPEG", quality)
        if len(jpeg) <= limit:
            return jpeg, ".jpg"
    return None


def _encode(image: Image.Image, image_format: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, quality=quality)
    return buffer.getvalue()
