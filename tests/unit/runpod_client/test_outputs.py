"""The pure parts of the extractor: finding images in every output shape, decoding base64, reading progress."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from runpod_client import FetchPolicy, InvalidImageError, NoImagesError, parse_progress
from runpod_client.outputs import (
    ImageFetchError,
    ImageRef,
    address_refusal,
    decode_base64_image,
    find_image_refs,
    sniff_media_type,
)


def encoded(image_format: str = "PNG") -> tuple[bytes, str]:
    """A tiny real image and its base64."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 200, 30)).save(buffer, format=image_format)
    data = buffer.getvalue()
    return data, base64.b64encode(data).decode()


PNG, B64 = encoded()
URL = "https://bucket.example.com/out/1.png?X-Amz-Signature=abc"


@pytest.mark.parametrize(
    ("image_format", "media_type", "suffix"),
    [
        ("PNG", "image/png", ".png"),
        ("JPEG", "image/jpeg", ".jpg"),
        ("WEBP", "image/webp", ".webp"),
        ("GIF", "image/gif", ".gif"),
    ],
)
def test_format_is_sniffed_from_the_bytes(image_format: str, media_type: str, suffix: str) -> None:
    """PNG, JPEG, WebP and GIF are recognised by their magic bytes, with the matching file suffix."""
    _, text = encoded(image_format)
    image = decode_base64_image(text)
    assert image.media_type == media_type
    assert image.filename("result") == f"result{suffix}"
    assert image.filename_extension == suffix[1:]


@pytest.mark.parametrize(
    "text",
    [
        B64,
        B64.rstrip("="),
        f"data:image/png;base64,{B64}",
        "\n".join(B64[i : i + 76] for i in range(0, len(B64), 76)),
        base64.urlsafe_b64encode(PNG).decode().rstrip("="),
    ],
    ids=["padded", "unpadded", "data-uri", "wrapped", "url-safe"],
)
def test_base64_variants_decode_to_the_same_image(text: str) -> None:
    """Padding, a data-URI prefix, line breaks and the URL-safe alphabet are all accepted."""
    assert decode_base64_image(text).data == PNG


@pytest.mark.parametrize("text", ["not base64 at all!!", B64[:-3] + "$$$", "A" * 17])
def test_bad_base64_is_an_invalid_image(text: str) -> None:
    """Text that cannot be base64 is refused with a clear error."""
    with pytest.raises(InvalidImageError, match="base64"):
        decode_base64_image(text)


def test_base64_of_something_else_is_an_invalid_image() -> None:
    """Valid base64 of bytes that are no image is refused."""
    with pytest.raises(InvalidImageError, match="not a PNG, JPEG, WebP or GIF"):
        decode_base64_image(base64.b64encode(b"%PDF-1.7 this is a document").decode())


def test_data_uri_that_is_not_base64_is_invalid() -> None:
    """A percent-encoded data URI is not an image we can read."""
    with pytest.raises(InvalidImageError):
        decode_base64_image("data:image/svg+xml,%3Csvg%3E%3C/svg%3E")


def test_unknown_bytes_have_no_media_type() -> None:
    """Bytes of no known image format are not guessed."""
    assert sniff_media_type(b"GIF8") is None


A1111_INFO = json.dumps({"seed": 100, "all_seeds": [100, 101]})
SHAPES = {
    "stable-diffusion-v1": ([{"image": URL, "seed": 1}, {"image": URL, "seed": 2}], [("url", 1), ("url", 2)]),
    "worker-stable_diffusion_v1": ([{"image": B64, "seed": 3}], [("base64", 3)]),
    "worker-sdxl": ({"images": [f"data:image/png;base64,{B64}"] * 2, "image_url": "x", "seed": 5}, [("base64", 5)] * 2),
    "worker-sdxl-bucket": ({"images": [URL], "image_url": URL, "seed": 6}, [("url", 6)]),
    "worker-sdxl-turbo": ({"images": [{"image": B64, "seed": 7}], "generation_time": 1.2}, [("base64", 7)]),
    "worker-sdxl-turbo-old": (B64, [("base64", None)]),
    "worker-comfyui-5": (
        {
            "images": [
                {"filename": "a.png", "type": "base64", "data": B64},
                {"filename": "b", "type": "s3_url", "data": URL},
            ]
        },
        [("base64", None), ("url", None)],
    ),
    "worker-comfyui-legacy": ({"status": "success", "message": B64}, [("base64", None)]),
    "worker-comfyui-legacy-url": ({"status": "success", "message": URL}, [("url", None)]),
    "a1111": (
        {"images": [B64, B64], "parameters": {"seed": -1}, "info": A1111_INFO},
        [("base64", 100), ("base64", 101)],
    ),
    "flux": ({"image_url": URL, "cost": 0.0025}, [("url", None)]),
}


@pytest.mark.parametrize("worker", sorted(SHAPES))
def test_every_output_shape_of_the_table_is_found(worker: str) -> None:
    """Each worker's output yields its images, in order, with seeds where the worker gives them."""
    output, expected = SHAPES[worker]
    refs = find_image_refs(output)
    assert [(ref.kind, ref.seed) for ref in refs] == expected


def test_sdxl_image_url_does_not_duplicate_the_first_image() -> None:
    """worker-sdxl repeats its first image as image_url; it is read once."""
    refs = find_image_refs({"images": [URL], "image_url": URL})
    assert refs == [ImageRef("url", URL, None)]


@pytest.mark.parametrize(
    ("output", "said"),
    [
        (None, "no output"),
        ([], "without any image"),
        ({"status": "success_no_images", "images": []}, "success_no_images"),
        ({"images": [], "errors": ["Node 9 failed"]}, "Node 9 failed"),
        ({"status": "error", "message": "prompt rejected"}, "prompt rejected"),
        ({"generation_time": 2.0}, "without any image"),
    ],
)
def test_outputs_without_images_say_so(output: object, said: str) -> None:
    """'Finished without any image', with what the worker said when it said something."""
    with pytest.raises(NoImagesError, match=said):
        find_image_refs(output)


def test_short_text_is_not_an_image() -> None:
    """A bare word where an image should be is an invalid image, not a crash."""
    with pytest.raises(InvalidImageError, match="not an image"):
        find_image_refs(["done"])


def test_non_http_urls_cannot_be_fetched() -> None:
    """s3:// and friends are named in the error."""
    with pytest.raises(ImageFetchError, match="s3://"):
        find_image_refs({"image_url": "s3://bucket/key.png"})


@pytest.mark.parametrize(
    ("output", "done", "total"),
    [
        ("12/30", 12, 30),
        ("Step 12 of 30", 12, 30),
        ("sampling: 3 / 4", 3, 4),
        ("45%", 45, 100),
        ({"step": 12, "steps": 30}, 12, 30),
        ({"current": 5, "total": 20, "status": "sampling"}, 5, 20),
        ({"percent": 40}, 40, 100),
        ({"progress": "3/4"}, 3, 4),
        ({"progress": 0.25}, 0.25, 1),
        (0.5, 0.5, 1),
    ],
)
def test_progress_values_are_read(output: object, done: float, total: float) -> None:
    """Step counts, percentages and fractions in common spellings are progress."""
    progress = parse_progress(output)
    assert progress is not None
    assert (progress.done, progress.total) == (done, total)


@pytest.mark.parametrize(
    "output",
    [None, "", "warming up", 5, True, "0/0", {"images": [B64]}, B64 + "12/30" + B64, [{"step": 1, "steps": 2}]],
)
def test_other_outputs_are_not_progress(output: object) -> None:
    """Results, plain messages, bare integers and long base64 are not mistaken for progress."""
    assert parse_progress(output) is None


def test_progress_fraction_is_clamped() -> None:
    """A worker overshooting its step count still reads as done, not more."""
    progress = parse_progress("31/30")
    assert progress is not None
    assert progress.fraction == 1.0


@pytest.mark.parametrize(
    ("address", "policy", "refused"),
    [
        ("93.184.216.34", FetchPolicy(), None),
        ("2606:4700::6810:85e5", FetchPolicy(), None),
        ("127.0.0.1", FetchPolicy(), "a loopback address"),
        ("0.0.0.0", FetchPolicy(), "a loopback address"),
        ("127.0.0.1", FetchPolicy(allow_loopback=True), None),
        ("10.1.2.3", FetchPolicy(allow_loopback=True), "a private address"),
        ("172.16.0.9", FetchPolicy(), "a private address"),
        ("100.64.0.1", FetchPolicy(), "a private address"),
        ("fd00::1", FetchPolicy(), "a private address"),
        ("169.254.169.254", FetchPolicy(), "a link-local address"),
        ("fe80::1", FetchPolicy(), "a link-local address"),
        ("::ffff:10.0.0.1", FetchPolicy(), "a private address"),
        ("192.168.0.4", FetchPolicy(allow_private=True), None),
        ("224.0.0.1", FetchPolicy(allow_private=True), "a multicast address"),
    ],
)
def test_address_policy(address: str, policy: FetchPolicy, refused: str | None) -> None:
    """Public addresses pass; loopback, private, shared and link-local ones only when allowed."""
    assert address_refusal(address, policy) == refused
