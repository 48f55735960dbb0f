"""Fitting images under a channel's upload limit: re-encode (WebP, then JPEG), then downscale. Never drop one.

Each image keeps its generation parameters (jobs/image_metadata.py): a PNG posted as it is gets a `parameters` text
chunk, a re-encoded WebP or JPEG an EXIF UserComment, as A1111 writes them. Both count toward the limit.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from jobs.image_metadata import exif_user_comment, with_parameters
from runpod_client.outputs import ExtractedImage

log = logging.getLogger(__name__)

# Room left for the message's JSON payload and multipart framing inside the limit.
PAYLOAD_MARGIN = 64 * 1024
WEBP_QUALITY = 90
JPEG_QUALITIES = (90, 80, 70)
DOWNSCALE_STEP = 0.75
MIN_SIDE = 64
# The EXIF sub-IFD and its UserComment tag (Exif 2.3, 4.6.3 and 4.6.5), where A1111 keeps the parameters.
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
# A JPEG APP1 segment holds at most 65533 bytes: "Exif\0\0" and the TIFF structure around the comment take some.
MAX_JPEG_EXIF_BYTES = 65533 - 64


@dataclass(frozen=True)
class Upload:
    """One image ready to attach."""

    data: bytes
    filename: str
    seed: int | None
    reencoded: bool = False


async def fit_uploads(
    images: Sequence[ExtractedImage],
    stem: str,
    limit_bytes: int,
    parameters: Sequence[str | None] = (),
) -> list[Upload]:
    """The images as attachments whose total stays under `limit_bytes` (Pillow work runs in a thread).

    `parameters[i]` is image i's A1111 `parameters` text (`jobs.image_metadata.job_infotexts`), written into it.
    """
    budget = max(limit_bytes - PAYLOAD_MARGIN, 1)
    per_image = budget // max(1, len(images))
    uploads = []
    for index, image in enumerate(images, start=1):
        name = f"{stem}-{index}"
        text = parameters[index - 1] if index <= len(parameters) else None
        # Inserting a PNG chunk copies bytes without decoding: microseconds, no thread needed.
        data = image.data if text is None else with_parameters(image.data, image.media_type, text)
        if len(data) <= per_image:
            uploads.append(Upload(data, image.filename(name), image.seed))
        else:
            data, suffix = await asyncio.to_thread(shrink, image.data, per_image, text)
            uploads.append(Upload(data, f"{name}{suffix}", image.seed, reencoded=True))
    return uploads


def shrink(data: bytes, limit: int, parameters: str | None = None) -> tuple[bytes, str]:
    """Re-encode and, if still needed, downscale until the image fits in `limit` bytes (EXIF included)."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image = opened.convert("RGBA" if opened.mode in ("RGBA", "LA", "P") else "RGB")
    exif = _parameters_exif(parameters)
    while True:
        encoded = _smallest_encoding(image, limit, exif)
        if encoded is not None:
            return encoded
        width, height = image.size
        if min(width, height) * DOWNSCALE_STEP < MIN_SIDE:
            # A tiny JPEG always fits any limit Discord has; this is the last resort (with the parameters if they
            # fit too).
            tiny = image.convert("RGB").resize((MIN_SIDE, MIN_SIDE))
            jpeg = _encode(tiny, "JPEG", JPEG_QUALITIES[-1], exif)
            return (jpeg if len(jpeg) <= limit else _encode(tiny, "JPEG", JPEG_QUALITIES[-1], None)), ".jpg"
        image = image.resize((int(width * DOWNSCALE_STEP), int(height * DOWNSCALE_STEP)), Image.Resampling.LANCZOS)


def _parameters_exif(parameters: str | None) -> bytes | None:
    """EXIF holding `parameters` as A1111's UserComment; None when there are none or JPEG could not carry them."""
    if parameters is None:
        return None
    exif = Image.Exif()
    # Big-endian, as piexif writes it, so readers that decode "UNICODE" in the file's byte order agree too.
    exif.endian = ">"
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = exif_user_comment(parameters)
    data = exif.tobytes()
    if len(data) > MAX_JPEG_EXIF_BYTES:
        log.debug("parameters of %s bytes do not fit in EXIF; re-encoding without them", len(data))
        return None
    return data


def _smallest_encoding(image: Image.Image, limit: int, exif: bytes | None) -> tuple[bytes, str] | None:
    webp = _encode(image, "WEBP", WEBP_QUALITY, exif)
    if len(webp) <= limit:
        return webp, ".webp"
    rgb = image.convert("RGB")
    for quality in JPEG_QUALITIES:
        jpeg = _encode(rgb, "JPEG", quality, exif)
        if len(jpeg) <= limit:
            return jpeg, ".jpg"
    return None


def _encode(image: Image.Image, image_format: str, quality: int, exif: bytes | None) -> bytes:
    buffer = io.BytesIO()
    if exif is None:
        image.save(buffer, image_format, quality=quality)
    else:
        image.save(buffer, image_format, quality=quality, exif=exif)
    return buffer.getvalue()
