"""The `parameters` text of an image (A1111's infotext) and its PNG text chunk, inserted without re-encoding."""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from jobs.image_metadata import (
    GenerationParameters,
    embed_png_text,
    exif_user_comment,
    image_seeds,
    job_infotexts,
    with_parameters,
)
from runpod_client.outputs import ExtractedImage
from storage.models import JobState, TrackedJob

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def job(model: str = "sdxl", **request: Any) -> TrackedJob:
    base = {"prompt": "a lighthouse at dusk", "negative_prompt": "", "width": 1024, "height": 1024, "steps": 25}
    base.update({"guidance": 7.5, "seed": 42, "count": 1, "seed_scope": "batch"})
    return TrackedJob(
        jid="j1",
        state=JobState.COMPLETED,
        endpoint_id="ep",
        model=model,
        user_id=1,
        request={**base, **request},
        created_at=NOW,
        updated_at=NOW,
    )


def png(side: int = 32, info: PngImagePlugin.PngInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 90)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def image(seed: int | None = None) -> ExtractedImage:
    return ExtractedImage(png(), "image/png", seed)


def parse_infotext(text: str) -> dict[str, str]:
    """A reader that follows A1111's documented format (modules/infotext_utils.py `parse_generation_parameters`).

    The last line holds the `Key: value` pairs when it has at least three; a value is a JSON string or runs to the
    next comma. The lines before it are the prompt, up to a line starting "Negative prompt:", which begins the
    negative prompt. Every line is stripped; a size `WxH` is split into `Size-1` and `Size-2`.
    """
    *lines, last = text.strip().split("\n")
    pairs = _pairs(last)
    if len(pairs) < 3:
        lines, pairs = [*lines, last], []
    prompt: list[str] = []
    negative: list[str] | None = None
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            negative = [] if negative is None else negative
            line = line[len("Negative prompt:") :].strip()
        (prompt if negative is None else negative).append(line)
    result = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative or [])}
    for key, value in pairs:
        if size := re.fullmatch(r"(\d+)x(\d+)", value):
            result[f"{key}-1"], result[f"{key}-2"] = size.groups()
        else:
            result[key] = value
    return result


def _pairs(line: str) -> list[tuple[str, str]]:
    pairs = []
    rest = line
    while match := re.match(r"\s*(\w[\w \-/]+):\s*", rest):
        rest = rest[match.end() :]
        if rest.startswith('"'):
            value, end = json.JSONDecoder().raw_decode(rest)
            rest = rest[end:]
        else:
            value, _, rest = rest.partition(",")
            rest = "," + rest if rest else ""
        pairs.append((match.group(1), str(value)))
        rest = rest[1:] if rest.startswith(",") else rest
    return pairs


def chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, data, crc) of each chunk."""
    found, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        found.append((kind, body, crc))
        position += 12 + length
    return found


# --- the text ---------------------------------------------------------------------------------------------------


def test_plain_job_gives_a1111s_infotext() -> None:
    """A job without negative prompt or sampler: the prompt, then the parameters line in A1111's order."""
    assert job_infotexts(job(), [image(42)]) == [
        "a lighthouse at dusk\nSteps: 25, CFG scale: 7.5, Seed: 42, Size: 1024x1024, Model: sdxl"
    ]


def test_negative_prompt_and_sampler_are_written_where_a1111_writes_them() -> None:
    """The negative prompt follows on its own line, the sampler between steps and guidance; 7 is written 7.0."""
    request = {"negative_prompt": "blurry", "sampler": "DPM++ 2M Karras", "guidance": 7, "steps": 30}
    (text,) = job_infotexts(job("flux", **request), [image(9)])
    assert text == (
        "a lighthouse at dusk\nNegative prompt: blurry\n"
        "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.0, Seed: 9, Size: 1024x1024, Model: flux"
    )


def test_prompt_with_commas_quotes_newlines_and_other_scripts_is_kept_as_written() -> None:
    """A1111 does not quote the prompt: commas, quotes, colons, newlines and non-Latin text stay as they are."""
    prompt = 'a "red" fox, 雪の中\nwatercolour: soft, Ünïcödé'
    (text,) = job_infotexts(job(prompt=prompt, negative_prompt="blurry,\nlow quality"), [image(3)])
    assert text == (
        'a "red" fox, 雪の中\nwatercolour: soft, Ünïcödé\nNegative prompt: blurry,\nlow quality\n'
        "Steps: 25, CFG scale: 7.5, Seed: 3, Size: 1024x1024, Model: sdxl"
    )


def test_value_with_comma_colon_or_quote_is_written_as_a_json_string() -> None:
    """A value A1111's parser would split is quoted as A1111 quotes it (a JSON string)."""
    text = GenerationParameters(prompt="p", sampler='Euler a, "fast": v2', steps=4, seed=1).infotext()
    assert text == 'p\nSteps: 4, Sampler: "Euler a, \\"fast\\": v2", Seed: 1'


def test_prompt_line_starting_like_the_negative_label_stays_in_the_prompt() -> None:
    """A prompt line that starts with "Negative prompt:" is joined to the line before, so it is not read as one."""
    text = GenerationParameters(prompt="a cat\nNegative prompt: dogs", steps=4, guidance=1.0, seed=2).infotext()
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "a cat Negative prompt: dogs"
    assert parsed["Negative prompt"] == ""


@pytest.mark.parametrize(
    ("prompt", "negative", "sampler"),
    [
        ("a lighthouse at dusk", "", None),
        ('a "red" fox, in snow: 雪\nsecond line, Ünïcödé', "blurry,\nlow: quality", "DPM++ 2M, Karras"),
        ("", "only a negative", 'quote " inside'),
    ],
)
def test_text_round_trips_through_a1111s_parser(prompt: str, negative: str, sampler: str | None) -> None:
    """What a reader following A1111's parse_generation_parameters reads back is what the job asked for."""
    parameters = GenerationParameters(
        prompt=prompt, negative_prompt=negative, steps=20, sampler=sampler, guidance=6.5, seed=123,
        width=832, height=1216, model="sdxl",
    )  # fmt: skip
    parsed = parse_infotext(parameters.infotext())
    expected = {
        "Prompt": prompt, "Negative prompt": negative, "Steps": "20", "CFG scale": "6.5", "Seed": "123",
        "Size-1": "832", "Size-2": "1216", "Model": "sdxl",
    }  # fmt: skip
    if sampler is not None:
        expected["Sampler"] = sampler
    assert parsed == expected


def test_batch_from_one_seed_names_that_seed_on_every_image() -> None:
    """worker-stable_diffusion_v1 labels image i `seed + i` but rendered all from the first: each names the first."""
    assert image_seeds({"seed": 42, "seed_scope": "batch"}, [42, 43]) == [42, 42]
    assert image_seeds({"seed": 42, "seed_scope": "batch"}, [None, None]) == [42, 42]


def test_images_with_their_own_seeds_name_their_own() -> None:
    """A1111 renders image i from seed + i: the reported seed, or the asked seed + i when none is reported."""
    assert image_seeds({"seed": 10, "seed_scope": "image"}, [10, 11]) == [10, 11]
    assert image_seeds({"seed": 10, "seed_scope": "image"}, [None, None]) == [10, 11]


def test_exif_user_comment_is_unicode_prefixed_utf16_big_endian() -> None:
    """The UserComment A1111 writes with piexif: "UNICODE\\0" then UTF-16BE."""
    assert exif_user_comment("雪 a") == b"UNICODE\x00" + "雪 a".encode("utf-16-be")


# --- the PNG chunk ----------------------------------------------------------------------------------------------


def test_png_gets_a_parameters_text_pillow_reads() -> None:
    """Pillow (as A1111 reads it) finds the text under `parameters`, in a tEXt chunk right after IHDR."""
    out = embed_png_text(png(), "a fox\nSteps: 4, Seed: 1, Size: 32x32")
    with Image.open(io.BytesIO(out)) as opened:
        text = opened.text  # type: ignore[attr-defined]
    assert text["parameters"] == "a fox\nSteps: 4, Seed: 1, Size: 32x32"
    kinds = [kind for kind, _, _ in chunks(out)]
    assert kinds[:2] == [b"IHDR", b"tEXt"]


def test_non_latin_text_goes_into_an_itxt_chunk() -> None:
    """Text Latin-1 cannot hold is written as UTF-8 iTXt, and read back whole."""
    out = embed_png_text(png(), "雪の中の狐 🦊\nSteps: 4, Seed: 1, Size: 32x32")
    with Image.open(io.BytesIO(out)) as opened:
        text = opened.text  # type: ignore[attr-defined]
    assert text["parameters"] == "雪の中の狐 🦊\nSteps: 4, Seed: 1, Size: 32x32"
    assert [kind for kind, _, _ in chunks(out)][1] == b"iTXt"


def test_inserted_chunk_has_a_correct_crc() -> None:
    """The chunk's CRC is the CRC-32 of its type and data."""
    for kind, body, crc in chunks(embed_png_text(png(), "é and 雪")):
        assert crc == zlib.crc32(kind + body)


def test_existing_parameters_chunk_is_replaced_and_other_text_kept() -> None:
    """A worker's own `parameters` (A1111 writes one) is replaced, not doubled; other text chunks stay."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "the worker's text")
    info.add_itxt("parameters", "a second one, compressed", zip=True)
    info.add_text("Software", "worker")
    out = embed_png_text(png(info=info), "ours")
    keys = [body.split(b"\x00", 1)[0] for kind, body, _ in chunks(out) if kind in (b"tEXt", b"iTXt", b"zTXt")]
    assert sorted(keys) == [b"Software", b"parameters"]
    with Image.open(io.BytesIO(out)) as opened:
        text = opened.text  # type: ignore[attr-defined]
    assert text == {"parameters": "ours", "Software": "worker"}


def test_pixels_and_every_other_byte_are_unchanged() -> None:
    """Only the chunk is added: without it the file is the original byte for byte, and the pixels decode the same."""
    original = png(64)
    out = embed_png_text(original, "a fox")
    kind_length = 12 + len(b"parameters\x00a fox")
    assert out[:33] + out[33 + kind_length :] == original
    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(out)) as after:
        assert before.tobytes() == after.tobytes()


@pytest.mark.parametrize(
    "broken",
    [
        b"",
        b"GIF89a not a png",
        png()[:40],  # cut inside a chunk
        png()[:-12],  # no IEND
        png()[:8] + struct.pack(">I", 13) + b"IDAT" + png()[16:],  # the first chunk is not IHDR
        png()[:33] + struct.pack(">I", 0xFFFFFFF0) + b"IDAT" + png()[41:],  # a length beyond the file
    ],
)
def test_malformed_png_is_passed_through_unchanged(broken: bytes) -> None:
    """Bytes that are not a well-formed PNG come back as they were: the image is still delivered, without text."""
    assert embed_png_text(broken, "a fox") == broken


def test_jpeg_and_webp_from_the_worker_are_left_as_they_are() -> None:
    """Only a PNG gets the text without re-encoding; other formats are returned unchanged."""
    jpeg = b"\xff\xd8\xff\xe0 a jpeg"
    assert with_parameters(jpeg, "image/jpeg", "a fox") == jpeg


def test_upscaled_image_names_the_drawing_and_the_upscale_as_a1111s_extras_do() -> None:
    """An upscale's image carries the drawing's size and model, then A1111's Extras fields for the enlargement."""
    upscaled = job("esrgan-2x", width=2048, height=2048, upscale=2.0, source_image_url="https://cdn.example/1.png")
    lineage = {"parent_jid": "p1", "parent_action": "upscale", "parent_image": 2, "parent_model": "sdxl"}
    upscaled = upscaled.model_copy(update={"extra": lineage})
    (text,) = job_infotexts(upscaled, [image()])
    assert text.splitlines()[-1] == (
        "Steps: 25, CFG scale: 7.5, Seed: 42, Size: 1024x1024, Model: sdxl, Postprocess upscale by: 2.0, "
        "Postprocess upscaler: esrgan-2x"
    )
