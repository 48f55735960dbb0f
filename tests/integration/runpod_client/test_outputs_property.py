"""Any worker output, however odd, gives images or a readable `OutputError`: never another exception."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runpod_client.outputs import FetchPolicy, OutputError, extract_images, sniff_media_type

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
SAMPLE_PNG = base64.b64encode(PNG_HEADER + b"\x00" * 64).decode()

# Strings that look like what workers send, and like what a hostile or broken worker could send.
TRICKY_STRINGS = st.one_of(
    st.text(max_size=50),
    st.just(SAMPLE_PNG),
    st.builds(lambda cut: SAMPLE_PNG[:cut], st.integers(0, len(SAMPLE_PNG))),  # truncated base64
    st.builds(lambda data: "data:image/png;base64," + base64.b64encode(data).decode(), st.binary(max_size=64)),
    st.sampled_from(
        [
            "http://127.0.0.1:1/image.png",
            "http://10.0.0.1/image.png",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x.png",
            "file:///etc/passwd",
            "https://",
            "data:image/png;base64,!!!!",
        ]
    ),
)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TRICKY_STRINGS)
KEYS = st.sampled_from(["images", "image", "image_url", "message", "data", "type", "seed", "output", "filename", "x"])
OUTPUTS = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
# Deeper than any real worker nests its output.
DEEP = st.integers(10, 200).map(lambda depth: _nest(depth))


def _nest(depth: int) -> Any:
    value: Any = SAMPLE_PNG
    for _ in range(depth):
        value = {"images": [value]}
    return value


async def check(output: Any) -> None:
    async with aiohttp.ClientSession() as session:
        try:
            images = await extract_images(output, session=session, policy=FetchPolicy(timeout_s=2))
        except OutputError as exc:
            reason = str(exc)
            images = []
        else:
            reason = ""
    assert images or reason, "neither images nor a reason"
    for image in images:
        assert sniff_media_type(image.data) == image.media_type


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(output=OUTPUTS)
# Found by this test: a URL with a scheme and no host once raised ValueError from deep inside yarl.
@example(output="HTTP://")
@example(output={"image_url": "http:///no-host.png"})
# A PNG signature followed by junk is not a PNG.
@example(output={"images": [SAMPLE_PNG]})
async def test_any_output_gives_images_or_a_readable_error(output: Any) -> None:
    """Nested JSON, truncated base64, non-images and private URLs end in images or an OutputError."""
    await check(output)


@settings(max_examples=20, deadline=None)
@given(output=DEEP)
async def test_deeply_nested_output_is_refused_cleanly(output: Any) -> None:
    """Outputs nested far deeper than any worker's never exhaust the stack."""
    await check(output)
