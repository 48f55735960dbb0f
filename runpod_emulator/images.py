"""Real PNG images drawn with Pillow, showing the prompt and the seed. CPU-bound: call them in a worker thread."""

from __future__ import annotations

import colorsys
import io
import math
import random
import struct
import textwrap
import zlib
from collections.abc import Iterator

from PIL import Image, ImageDraw, ImageFont, ImageOps

MIN_SIDE = 64
MAX_SIDE = 2048
# The largest side an emulated upscaler returns.
MAX_ENLARGED_SIDE = 8192
# Bytes per pixel of an RGB PNG stored without compression (plus one filter byte per row).
RGB_BYTES = 3
MAX_PROMPT_CHARS = 300


def clamp_side(value: int) -> int:
    """A width or height the emulator will draw."""
    return max(MIN_SIDE, min(MAX_SIDE, value))


def render_png(
    prompt: str,
    seed: int,
    width: int,
    height: int,
    *,
    label: str = "",
    min_bytes: int = 0,
    background: Image.Image | None = None,
) -> bytes:
    """A PNG of `width`×`height` showing the prompt and the seed, deterministic for a given seed.

    With `min_bytes`, the picture is enlarged and filled with noise (which does not compress) until the file is at
    least that large: an "oversized" image for testing upload limits. With `background` (an img2img job's source
    image), the picture is that image fitted to the size, under the caption: what the job started from shows.
    """
    rng = random.Random(seed)
    width, height = clamp_side(width), clamp_side(height)
    if background is not None:
        image = ImageOps.fit(background.convert("RGB"), (width, height))
    elif min_bytes > width * height * RGB_BYTES:
        side = math.ceil(math.sqrt(min_bytes / RGB_BYTES))
        width = height = side
        image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * RGB_BYTES))
    else:
        image = Image.new("RGB", (width, height), _colour(rng, lightness=0.35))
        _draw_shapes(ImageDraw.Draw(image), rng, width, height)
    _draw_caption(ImageDraw.Draw(image), prompt, seed, label, width, height)
    buffer = io.BytesIO()
    # Noise does not compress: storing it raw is as small and much faster.
    image.save(buffer, format="PNG", compress_level=0 if min_bytes else 6)
    return buffer.getvalue()


def enlarge_png(source: Image.Image, factor: float) -> bytes:
    """The source enlarged by `factor` (each side rounded, at most MAX_ENLARGED_SIDE), as a PNG: what an upscaler
    returns. Nothing is drawn on it, so its pixels are the source's."""
    width = max(1, min(MAX_ENLARGED_SIDE, round(source.width * factor)))
    height = max(1, min(MAX_ENLARGED_SIDE, round(source.height * factor)))
    buffer = io.BytesIO()
    source.resize((width, height), Image.Resampling.LANCZOS).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def open_source(data: bytes) -> Image.Image | None:
    """A source image's pixels (upright), or None when the bytes are not an image the emulator can open."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _colour(rng: random.Random, *, lightness: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hls_to_rgb(rng.random(), lightness, 0.6)
    return round(red * 255), round(green * 255), round(blue * 255)


def _draw_shapes(draw: ImageDraw.ImageDraw, rng: random.Random, width: int, height: int) -> None:
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(max(width, height) // 10, max(width, height) // 3)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_colour(rng, lightness=0.55))


def _draw_caption(draw: ImageDraw.ImageDraw, prompt: str, seed: int, label: str, width: int, height: int) -> None:
    size = max(12, min(width, height) // 24)
    font = ImageFont.load_default(size=size)
    columns = max(10, int(width / (size * 0.6)) - 2)
    text = prompt.strip()[:MAX_PROMPT_CHARS] or "(no prompt)"
    lines = [*textwrap.wrap(text, columns)[:8], f"seed {seed}"]
    if label:
        lines.append(label)
    line_height = round(size * 1.3)
    box_height = line_height * len(lines) + size
    top = height - box_height
    draw.rectangle((0, top, width, height), fill=(0, 0, 0))
    for index, line in enumerate(lines):
        draw.text((size // 2, top + size // 2 + index * line_height), line, font=font, fill=(255, 255, 255))


# Bytes per pixel of 8-bit PNG colour types: greyscale, RGB, palette, grey + alpha, RGBA.
PNG_BYTES_PER_PIXEL = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# A PNG row filter byte is 0–4; anything else makes a decoder give up on the row.
INVALID_FILTER = 9


def corrupt_pixels(png: bytes) -> bytes:
    """The PNG with one row's filter byte made invalid, every chunk's checksum still right.

    Pillow's `verify()` checks only the chunk structure and checksums, so it accepts this file; decoding the pixels
    (`load()`) fails half-way. What a worker with a broken encoder or a bit flip before the upload hands back.
    """
    chunks = list(_png_chunks(png))
    header = chunks[0][1]
    width, height = struct.unpack(">II", header[:8])
    bit_depth, colour_type, interlace = header[8], header[9], header[12]
    if bit_depth != 8 or interlace or colour_type not in PNG_BYTES_PER_PIXEL:
        raise ValueError("only 8-bit, non-interlaced PNGs can be corrupted this way")
    pixels = bytearray(zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT")))
    stride = 1 + width * PNG_BYTES_PER_PIXEL[colour_type]
    pixels[stride * (height // 2)] = INVALID_FILTER
    out = [png[:8]]
    written = False
    for kind, data in chunks:
        if kind != b"IDAT":
            out.append(_png_chunk(kind, data))
        elif not written:  # one IDAT carries all the pixels; the others go
            out.append(_png_chunk(b"IDAT", zlib.compress(bytes(pixels))))
            written = True
    return b"".join(out)


def _png_chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    position = 8
    while position + 8 <= len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        yield png[position + 4 : position + 8], png[position + 8 : position + 8 + length]
        position += 12 + length


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
