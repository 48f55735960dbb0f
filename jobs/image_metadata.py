"""Generation parameters that travel with an image, in the text other tools read (AUTOMATIC1111's `parameters`).

The text is A1111's "infotext", as `create_infotext` writes it (AUTOMATIC1111/stable-diffusion-webui,
modules/processing.py) and `parse_generation_parameters` reads it back (modules/infotext_utils.py):

    <prompt, any number of lines>
    Negative prompt: <negative prompt, any number of lines>      (only when there is one)
    Steps: 25, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 1024x1024, Model: sdxl

The last line holds `Key: value` pairs joined by ", " in `create_infotext`'s order; a value holding a comma, a
colon or a newline is written as a JSON string (infotext_utils.py `quote`, read back by `unquote`). The prompt is
not quoted: the parser takes every line before the last as the prompt, up to a line that starts with
"Negative prompt:".

A1111 writes it into a PNG as the text chunk `parameters` (modules/images.py, `save_image_with_geninfo`: Pillow's
`PngInfo.add_text`, which writes tEXt, or iTXt when the text is not Latin-1), and into JPEG and WebP as the EXIF
UserComment, "UNICODE\\0" followed by UTF-16 big-endian (piexif `helper.UserComment.dump(..., encoding="unicode")`;
hMatoba/Piexif piexif/helper.py). This module builds the text and puts it into a PNG's bytes without decoding the
image; it knows no Pillow (the command line does not load it), so re-encoding with EXIF is `cogs/images.py`'s.
"""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobs.lineage import PARENT_MODEL_FIELD
from jobs.presets import SEED_SCOPE_IMAGE
from runpod_client.outputs import ExtractedImage
from storage.models import TrackedJob

log = logging.getLogger(__name__)

PARAMETERS_KEY = "parameters"
PNG_MEDIA_TYPE = "image/png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The EXIF UserComment's character code for Unicode (Exif 2.3, table 9), as piexif writes it.
EXIF_UNICODE_PREFIX = b"UNICODE\x00"
NEGATIVE_PROMPT_LABEL = "Negative prompt:"
# A PNG chunk: 4-byte length, 4-byte type, data, 4-byte CRC (PNG spec, 5.3).
CHUNK_OVERHEAD = 12
IHDR_LENGTH = 13
# PNG's limit on a chunk's length (2^31 - 1, PNG spec 5.3).
MAX_CHUNK_LENGTH = 0x7FFFFFFF
TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
# Characters A1111's `quote` looks for, and the double quote, which would make `unquote` misread a bare value.
QUOTE_WHEN = (",", "\n", ":", '"')


@dataclass(frozen=True)
class GenerationParameters:
    """What reproduces one image: A1111's infotext fields the bot knows (None: not known, left out)."""

    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    sampler: str | None = None
    guidance: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    # An upscaled image: the factor and the upscaler, as A1111's Extras tab writes them after the drawing's fields
    # (scripts/postprocessing_upscale.py: info["Postprocess upscale by"], info["Postprocess upscaler"]).
    upscale_by: float | None = None
    upscaler: str | None = None

    def infotext(self) -> str:
        """The text of A1111's `parameters` chunk for these values."""
        fields: list[tuple[str, object | None]] = [
            ("Steps", self.steps),
            ("Sampler", self.sampler),
            # A1111 writes its float cfg_scale as Python prints it: 7.0, 7.5.
            ("CFG scale", None if self.guidance is None else float(self.guidance)),
            ("Seed", self.seed),
            ("Size", f"{self.width}x{self.height}" if self.width and self.height else None),
            ("Model", self.model),
            ("Postprocess upscale by", self.upscale_by),
            ("Postprocess upscaler", self.upscaler),
        ]
        params = ", ".join(f"{key}: {_quote(value)}" for key, value in fields if value is not None)
        negative = _prompt_lines(self.negative_prompt)
        text = _prompt_lines(self.prompt) + (f"\n{NEGATIVE_PROMPT_LABEL} {negative}" if negative else "")
        # create_infotext strips the whole: an empty prompt leaves the parameters as the only line.
        return f"{text}\n{params}".strip()


def image_seeds(request: Mapping[str, Any], reported: Sequence[int | None]) -> list[int | None]:
    """The seed that rendered each image, as the result card labels it (cogs/render.py `seed_label`).

    A worker that renders a batch from one seed (worker-sdxl, worker-stable_diffusion_v1: one generator seeded once)
    rendered every image from its first reported seed, whatever it labels image i. Where each image has its own
    seed (A1111), a worker that reports none used the asked seed + i (modules/processing.py: `all_seeds = [seed + x
    ...]`).
    """
    asked_seed = _int_or_none(request.get("seed"))
    if request.get("seed_scope") == SEED_SCOPE_IMAGE:
        return [
            seed if seed is not None else (None if asked_seed is None else asked_seed + index)
            for index, seed in enumerate(reported)
        ]
    batch = next((seed for seed in reported if seed is not None), asked_seed)
    return [batch for _ in reported]


def job_parameters(
    job: TrackedJob, images: Sequence[ExtractedImage], *, sampler: str | None = None
) -> list[GenerationParameters]:
    """The parameters of each image of a finished job, in order (`sampler`: when the preset names one)."""
    request = job.request
    seeds = image_seeds(request, [image.seed for image in images])
    known_sampler = sampler or (str(request["sampler"]) if request.get("sampler") else None)
    upscale = _float_or_none(request.get("upscale"))
    if upscale:
        # An upscale: the drawing's own size and model reproduce it; the enlargement follows as A1111 writes it.
        width, height = _int_or_none(request.get("width")), _int_or_none(request.get("height"))
        parent_model = job.extra.get(PARENT_MODEL_FIELD)
        return [
            GenerationParameters(
                prompt=str(request.get("prompt", "")),
                negative_prompt=str(request.get("negative_prompt") or ""),
                steps=_int_or_none(request.get("steps")),
                sampler=known_sampler,
                guidance=_float_or_none(request.get("guidance")),
                seed=seed,
                width=None if width is None else round(width / upscale),
                height=None if height is None else round(height / upscale),
                model=str(parent_model) if parent_model else None,
                upscale_by=upscale,
                upscaler=job.model or None,
            )
            for seed in seeds
        ]
    return [
        GenerationParameters(
            prompt=str(request.get("prompt", "")),
            negative_prompt=str(request.get("negative_prompt") or ""),
            steps=_int_or_none(request.get("steps")),
            sampler=known_sampler,
            guidance=_float_or_none(request.get("guidance")),
            seed=seed,
            width=_int_or_none(request.get("width")),
            height=_int_or_none(request.get("height")),
            model=job.model or None,
        )
        for seed in seeds
    ]


def job_infotexts(job: TrackedJob, images: Sequence[ExtractedImage], *, sampler: str | None = None) -> list[str]:
    """The `parameters` text of each image of a finished job, in order."""
    return [parameters.infotext() for parameters in job_parameters(job, images, sampler=sampler)]


def with_parameters(data: bytes, media_type: str, text: str) -> bytes:
    """The image with `text` as its `parameters` where that needs no re-encoding (a PNG); other bytes unchanged."""
    if media_type != PNG_MEDIA_TYPE:
        return data
    return embed_png_text(data, text)


def embed_png_text(png: bytes, text: str, key: str = PARAMETERS_KEY) -> bytes:
    """The PNG with one text chunk `key` = `text` right after IHDR, replacing any chunk of that key it had.

    The pixels are not touched: chunks are copied as they are. tEXt when the text is Latin-1, else iTXt (UTF-8),
    as Pillow's `PngInfo.add_text` chooses. A PNG whose structure is broken comes back unchanged.
    """
    try:
        chunks = list(_chunks(png))
    except ValueError as exc:
        log.debug("not adding %s to an image: %s", key, exc)
        return png
    out = [PNG_SIGNATURE]
    for kind, start, end in chunks:
        if kind in TEXT_CHUNKS and _text_key(png[start + 8 : end - 4]) == key.encode("latin-1"):
            continue
        out.append(png[start:end])
        if kind == b"IHDR":
            out.append(_text_chunk(key, text))
    return b"".join(out)


def exif_user_comment(text: str) -> bytes:
    """The EXIF UserComment value A1111 writes for `text`: "UNICODE\\0" and UTF-16 big-endian."""
    return EXIF_UNICODE_PREFIX + _clean(text).encode("utf-16-be")


def _chunks(png: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk, IHDR first and IEND last; raises ValueError when the PNG is malformed."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("no PNG signature")
    position = len(PNG_SIGNATURE)
    first = True
    while True:
        if position + CHUNK_OVERHEAD > len(png):
            raise ValueError("the PNG ends inside a chunk, before IEND")
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        end = position + CHUNK_OVERHEAD + length
        if length > MAX_CHUNK_LENGTH or end > len(png) or not kind.isalpha():
            raise ValueError(f"a chunk at byte {position} is malformed")
        if first and (kind != b"IHDR" or length != IHDR_LENGTH):
            raise ValueError("the first chunk is not IHDR")
        first = False
        yield kind, position, end
        position = end
        if kind == b"IEND":
            return


def _text_key(data: bytes) -> bytes:
    """The keyword of a tEXt, zTXt or iTXt chunk's data (every one begins with it and a NUL)."""
    return data.split(b"\x00", 1)[0]


def _text_chunk(key: str, text: str) -> bytes:
    clean = _clean(text)
    try:
        kind, data = b"tEXt", key.encode("latin-1") + b"\x00" + clean.encode("latin-1")
    except UnicodeEncodeError:
        # iTXt: keyword, NUL, not compressed (0, 0), empty language tag and translated keyword, UTF-8 text.
        kind, data = b"iTXt", key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + clean.encode("utf-8")
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _clean(text: str) -> str:
    # PNG text may hold no NUL (PNG spec 11.3.4), and no tool means one by it.
    return text.replace("\x00", "")


def _prompt_lines(prompt: str) -> str:
    """The prompt as infotext lines A1111's parser reads back as the same prompt.

    The parser starts the negative prompt at any line beginning with "Negative prompt:", so such a line is joined to
    the one before it with a space (CLIP reads a newline as a space, so the image is the same).
    """
    lines = _clean(prompt).strip().split("\n")
    kept = lines[:1]
    for line in lines[1:]:
        if line.strip().startswith(NEGATIVE_PROMPT_LABEL):
            kept[-1] = f"{kept[-1]} {line.strip()}"
        else:
            kept.append(line)
    return "\n".join(kept)


def _quote(value: object) -> str:
    text = str(value)
    if any(mark in text for mark in QUOTE_WHEN):
        return json.dumps(text, ensure_ascii=False)
    return text


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
