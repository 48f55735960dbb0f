"""Real PNG images drawn with Pillow, showing the prompt and the seed. CPU-bound: call them in a worker thread."""

from __future__ import annotations

import colorsys
import io
import math
import random
import textwrap

from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 64
MAX_SIDE = 2048
# Bytes per pixel of an RGB PNG stored without compression (plus one filter byte per row).
RGB_BYTES = 3
MAX_PROMPT_CHARS = 300


def clamp_side(value: int) -> int:
    """A width or height the emulator will draw."""
    return max(MIN_SIDE, min(MAX_SIDE, value))


def render_png(prompt: str, seed: int, width: int, height: int, *, label: str = "", min_bytes: int = 0) -> bytes:
    """A PNG of `width`×`height` showing the prompt and the seed, deterministic for a given seed.

    With `min_bytes`, the picture is enlarged and filled with noise (which does not compress) until the file is at
    least that large: an "oversized" image for testing upload limits.
    """
    rng = random.Random(seed)
    width, height = clamp_side(width), clamp_side(height)
    if min_bytes > width * height * RGB_BYTES:
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
