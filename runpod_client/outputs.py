"""Turn any known worker output into image bytes, and read progress values from a live job's output.

The output shapes are those of the common image workers (see the design's table): lists of `{"image", "seed"}`,
`images` lists of strings or dicts, `image_url`, `image`, `message`, `data` + `type`, and bare strings; each image
is base64 (with or without a data-URI prefix, padding optional) or a URL. URLs are downloaded with a size cap, a
timeout, and a refusal of loopback, private and link-local addresses unless the fetch policy allows them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import json
import re
import socket
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import yarl

from runpod_client.defaults import DEFAULT_MAX_IMAGE_BYTES

DEFAULT_FETCH_TIMEOUT_S = 30.0
DEFAULT_MAX_REDIRECTS = 3
DOWNLOAD_CHUNK_BYTES = 64 * 1024
# Decoding this much base64 takes long enough to be done off the event loop.
DECODE_IN_THREAD_CHARS = 512 * 1024
# Output nested deeper than this is not a worker's result.
MAX_OUTPUT_DEPTH = 6
# A base64 image is never shorter than this; a shorter string is a message, not an image.
MIN_BASE64_CHARS = 16
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HTTP_OK = 200

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
GIF_MAGICS = (b"GIF87a", b"GIF89a")
SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}

_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
_DATA_URI = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL)


class OutputError(Exception):
    """A finished job's output could not be turned into images."""


class NoImagesError(OutputError):
    """The job finished without any image (no output, an empty list, a worker that produced nothing)."""


class InvalidImageError(OutputError):
    """The output holds something that is not an image: bad base64, or bytes of no known image format."""


class ImageFetchError(OutputError):
    """An image URL could not be downloaded: refused, unreachable, an HTTP error, too large or too slow."""


class ImageTooLargeError(ImageFetchError):
    """An image URL's content is larger than the fetch policy's `max_bytes`."""

    def __init__(self, message: str, max_bytes: int) -> None:
        super().__init__(message)
        self.max_bytes = max_bytes


class UnsafeURLError(ImageFetchError):
    """An image URL was refused: not http(s), or its host is not a public address (loopback, private, reserved)."""


@dataclass(frozen=True)
class FetchPolicy:
    """Limits on downloading image URLs. Loopback and private addresses are refused unless allowed."""

    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    timeout_s: float = DEFAULT_FETCH_TIMEOUT_S
    allow_private: bool = False
    allow_loopback: bool = False
    max_redirects: int = DEFAULT_MAX_REDIRECTS


DEFAULT_FETCH_POLICY = FetchPolicy()


@dataclass(frozen=True)
class ExtractedImage:
    """One image of a job's output."""

    data: bytes
    media_type: str
    seed: int | None = None

    @property
    def suffix(self) -> str:
        """The file name suffix for the format, with its dot: `.png`, `.jpg`, `.webp`, `.gif`."""
        return SUFFIXES.get(self.media_type, ".bin")

    @property
    def filename_extension(self) -> str:
        """The file name extension without the dot: `png`, `jpg`, `webp`, `gif`."""
        return self.suffix.lstrip(".")

    def filename(self, stem: str) -> str:
        """A file name for the image: `stem` plus the format's suffix."""
        return f"{stem}{self.suffix}"


@dataclass(frozen=True)
class ImageRef:
    """Where one image of an output is: a URL to download, or base64 text (a data URI or raw)."""

    kind: Literal["url", "base64"]
    value: str
    seed: int | None = None


@dataclass(frozen=True)
class Progress:
    """A live job's progress: `done` of `total` (steps, or percent out of 100)."""

    done: float
    total: float

    @property
    def fraction(self) -> float:
        """Progress between 0 and 1."""
        return min(max(self.done / self.total, 0.0), 1.0)


@dataclass(frozen=True)
class Extraction:
    """The images taken from an output, and how many it held (more than were taken when a cap cut it short)."""

    images: list[ExtractedImage]
    found: int

    @property
    def dropped(self) -> int:
        """Images of the output beyond the cap: never downloaded nor decoded."""
        return self.found - len(self.images)


async def extract_images(
    output: Any,
    *,
    session: aiohttp.ClientSession,
    policy: FetchPolicy = DEFAULT_FETCH_POLICY,
    max_images: int | None = None,
) -> list[ExtractedImage]:
    """The images of a finished job's output, in order (the first `max_images`); raises an `OutputError` when there
    is none to give."""
    return (await extract_output(output, session=session, policy=policy, max_images=max_images)).images


async def extract_output(
    output: Any,
    *,
    session: aiohttp.ClientSession,
    policy: FetchPolicy = DEFAULT_FETCH_POLICY,
    max_images: int | None = None,
) -> Extraction:
    """The first `max_images` images of a finished job's output (all of them without a cap), and how many it held.

    Images beyond the cap are counted but never downloaded or decoded, so a worker that returns far too many costs
    no more memory than the cap allows. Raises an `OutputError` when there is no image to give.
    """
    refs = find_image_refs(output)
    kept = refs if max_images is None else refs[: max(max_images, 1)]
    images: list[ExtractedImage] = []
    for ref in kept:
        if ref.kind == "url":
            data = await download_image(ref.value, session=session, policy=policy)
            images.append(image_from_bytes(data, seed=ref.seed))
        elif len(ref.value) >= DECODE_IN_THREAD_CHARS:
            images.append(await asyncio.to_thread(decode_base64_image, ref.value, seed=ref.seed))
        else:
            images.append(decode_base64_image(ref.value, seed=ref.seed))
    # Magic bytes only name a format; a truncated or corrupt file must fail here, not as a broken post.
    await asyncio.to_thread(_verify_all, images)
    return Extraction(images=images, found=len(refs))


def _verify_all(images: list[ExtractedImage]) -> None:
    for index, image in enumerate(images, start=1):
        verify_decodable(image.data, f"image {index}")


def verify_decodable(data: bytes, name: str = "the image") -> None:
    """Raise `InvalidImageError` unless Pillow can read the image's structure (headers, chunks, checksums) and
    decode its pixels. CPU-bound: call it in a worker thread."""
    # Imported on first use: a command that never decodes an image (`runpod-bot status`) does not load Pillow.
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImageError(f"{name} is larger than any image should be ({len(data)} bytes)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{name} is truncated or corrupt and cannot be opened ({type(exc).__name__})") from None
    # verify() checks structure and checksums only: pixel data that is corrupt inside valid chunks passes it and then
    # breaks re-encoding. Decoding the pixels (verify() leaves the image unusable, so open it again) catches that.
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(
            f"the worker returned an image that cannot be decoded ({name}: its pixel data is corrupt, "
            f"{type(exc).__name__})"
        ) from None


def find_image_refs(output: Any) -> list[ImageRef]:
    """Where the images of an output are, without decoding or downloading anything.

    Raises `NoImagesError` when the output holds no image and `InvalidImageError` when it holds text that cannot
    be one.
    """
    if output is None:
        raise NoImagesError("the job finished without any image (no output)")
    refs = _refs(output, seed=None, depth=0)
    if not refs:
        raise NoImagesError(f"the job finished without any image{_worker_note(output)}")
    return refs


def _refs(value: Any, *, seed: int | None, depth: int) -> list[ImageRef]:
    if depth > MAX_OUTPUT_DEPTH:
        return []
    if isinstance(value, str):
        return [_ref_from_string(value, seed)]
    if isinstance(value, list):
        found: list[ImageRef] = []
        for item in value:
            found.extend(_refs(item, seed=seed, depth=depth + 1))
        return found
    if isinstance(value, dict):
        return _refs_from_dict(value, seed=seed, depth=depth)
    return []


def _refs_from_dict(value: dict[str, Any], *, seed: int | None, depth: int) -> list[ImageRef]:
    own_seed = _seed(value.get("seed"))
    seed = own_seed if own_seed is not None else seed
    if "images" in value:
        # worker-sdxl also sets `image_url` to the first of `images`: reading `images` alone avoids a duplicate.
        images = value["images"]
        items = images if isinstance(images, list) else [images]
        seeds = _batch_seeds(value, len(items))
        found: list[ImageRef] = []
        for index, item in enumerate(items):
            item_seed = seeds[index] if seeds is not None else seed
            found.extend(_refs(item, seed=item_seed, depth=depth + 1))
        return found
    for key in ("image", "image_url", "url", "data", "base64"):
        if isinstance(value.get(key), str | list | dict):
            return _refs(value[key], seed=seed, depth=depth + 1)
    message = value.get("message")
    if isinstance(message, str) and _looks_like_image(message):
        # worker-comfyui before 5: {"status": "success", "message": url or base64}; other messages are text.
        return [_ref_from_string(message, seed)]
    if isinstance(value.get("output"), list | dict | str):
        return _refs(value["output"], seed=seed, depth=depth + 1)
    return []


def _batch_seeds(value: dict[str, Any], count: int) -> list[int | None] | None:
    """Per-image seeds when the worker lists them (`seeds`, or A1111's `info` JSON with `all_seeds`)."""
    candidates: Any = value.get("seeds")
    if candidates is None and isinstance(value.get("info"), str):
        try:
            info = json.loads(value["info"])
        except ValueError:
            info = None
        if isinstance(info, dict):
            candidates = info.get("all_seeds")
            first = _seed(info.get("seed"))
            if candidates is None and first is not None:
                # A1111 numbers the images of a batch from the first seed.
                candidates = [first + index for index in range(count)]
    if isinstance(candidates, list) and len(candidates) >= count:
        return [_seed(candidate) for candidate in candidates[:count]]
    return None


def _seed(value: Any) -> int | None:
    # -1 is "random" in most workers' inputs, not a seed; booleans are ints to Python but never seeds.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _ref_from_string(text: str, seed: int | None) -> ImageRef:
    stripped = text.strip()
    lowered = stripped[:16].lower()
    if lowered.startswith(("http://", "https://")):
        return ImageRef("url", stripped, seed)
    if lowered.startswith("data:"):
        return ImageRef("base64", stripped, seed)
    scheme = re.match(r"^([a-z][a-z0-9+.-]*)://", lowered)
    if scheme:
        raise ImageFetchError(f"cannot download an image from a {scheme.group(1)}:// URL")
    if not _looks_like_base64(stripped):
        raise InvalidImageError(f"the output holds text that is not an image: {_excerpt(stripped)!r}")
    return ImageRef("base64", stripped, seed)


def _looks_like_image(text: str) -> bool:
    stripped = text.strip()
    lowered = stripped[:16].lower()
    return lowered.startswith(("http://", "https://", "data:")) or _looks_like_base64(stripped)


def _looks_like_base64(text: str) -> bool:
    compact = "".join(text.split())
    return len(compact) >= MIN_BASE64_CHARS and bool(_BASE64_CHARS.match(compact))


def _worker_note(output: Any) -> str:
    """What the worker said about having no image, when it said something (ComfyUI's `errors`, a message)."""
    if isinstance(output, dict):
        errors = output.get("errors")
        if isinstance(errors, list) and errors:
            return ": " + _excerpt("; ".join(str(error) for error in errors))
        for key in ("message", "status", "error"):
            if isinstance(output.get(key), str) and output[key]:
                return f" ({key}: {_excerpt(output[key])})"
    return ""


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode_base64_image(text: str, *, seed: int | None = None) -> ExtractedImage:
    """Decode base64 image text, with or without a data-URI prefix, padded or not, standard or URL-safe."""
    payload = text.strip()
    match = _DATA_URI.match(payload)
    if match:
        if ";base64" not in match.group("params").lower():
            raise InvalidImageError("the data URI is not base64-encoded")
        payload = match.group("data")
    compact = "".join(payload.split()).rstrip("=")
    if len(compact) % 4 == 1 or not _BASE64_CHARS.match(compact):
        raise InvalidImageError("the output holds text that is not valid base64")
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if "-" in padded or "_" in padded:
            data = base64.urlsafe_b64decode(padded)
        else:
            data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError("the output holds text that is not valid base64") from exc
    return image_from_bytes(data, seed=seed)


def image_from_bytes(data: bytes, *, seed: int | None = None) -> ExtractedImage:
    """An image from raw bytes, its format sniffed from the magic bytes; raises `InvalidImageError` otherwise."""
    media_type = sniff_media_type(data)
    if media_type is None:
        raise InvalidImageError(f"the data is not a PNG, JPEG, WebP or GIF image ({len(data)} bytes)")
    return ExtractedImage(data=data, media_type=media_type, seed=seed)


def sniff_media_type(data: bytes) -> str | None:
    """The image media type named by the data's magic bytes, or None."""
    if data.startswith(PNG_MAGIC):
        return "image/png"
    if data.startswith(JPEG_MAGIC):
        return "image/jpeg"
    if data.startswith(GIF_MAGICS):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def download_image(
    url: str, *, session: aiohttp.ClientSession, policy: FetchPolicy = DEFAULT_FETCH_POLICY
) -> bytes:
    """Download an image URL under the fetch policy; raises `ImageFetchError` (or `UnsafeURLError`)."""
    try:
        parsed = yarl.URL(url)
    except ValueError:
        raise UnsafeURLError("refusing to download a malformed URL") from None
    if not parsed.is_absolute() or not parsed.host:
        raise UnsafeURLError("refusing to download a URL without a host")
    try:
        async with asyncio.timeout(policy.timeout_s):
            return await _download(parsed, session, policy)
    except TimeoutError as exc:
        raise ImageFetchError(f"downloading {_describe_url(parsed)} took longer than {policy.timeout_s:g} s") from exc


async def _download(url: yarl.URL, session: aiohttp.ClientSession, policy: FetchPolicy) -> bytes:
    for _ in range(policy.max_redirects + 1):
        if url.scheme not in ("http", "https") or not url.host:
            raise UnsafeURLError(f"refusing to download {_describe_url(url)}: only http(s) URLs are fetched")
        address = await _checked_address(url, policy)
        # Connect to the address that was checked, not to whatever the name resolves to a moment later: this
        # closes the DNS-rebinding gap. The Host header and TLS server name still carry the original host.
        target = url.with_host(address)
        try:
            async with session.get(
                target,
                headers={"Host": url.host_port_subcomponent or url.host},
                server_hostname=url.host if url.scheme == "https" else None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=policy.timeout_s),
            ) as response:
                if response.status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise ImageFetchError(f"{_describe_url(url)} redirected without a Location")
                    url = url.join(yarl.URL(location))
                    continue
                if response.status != HTTP_OK:
                    raise ImageFetchError(f"downloading {_describe_url(url)} failed with HTTP {response.status}")
                return await _read_capped(response, url, policy.max_bytes)
        except aiohttp.ClientError as exc:
            raise ImageFetchError(f"downloading {_describe_url(url)} failed: {type(exc).__name__}") from exc
    raise ImageFetchError(f"{_describe_url(url)}: more than {policy.max_redirects} redirects")


async def _read_capped(response: aiohttp.ClientResponse, url: yarl.URL, max_bytes: int) -> bytes:
    too_large = ImageTooLargeError(f"the image at {_describe_url(url)} is larger than {max_bytes} bytes", max_bytes)
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_large
    data = bytearray()
    async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
        data += chunk
        if len(data) > max_bytes:
            raise too_large
    return bytes(data)


async def _checked_address(url: yarl.URL, policy: FetchPolicy) -> str:
    """Resolve the URL's host and check every address it has; return one to connect to."""
    host = url.host or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageFetchError(f"cannot resolve the host of {_describe_url(url)}") from exc
    addresses = _unique(str(info[4][0]).split("%", 1)[0] for info in infos)
    if not addresses:
        raise ImageFetchError(f"cannot resolve the host of {_describe_url(url)}")
    # Every address the name has, not only the first: a name may mix a public address with a private one.
    for address in addresses:
        reason = address_refusal(address, policy)
        if reason is not None:
            resolved = "" if address == host else f" ({address})"
            raise UnsafeURLError(
                f"refusing to download {_describe_url(url)}: {host} is {reason}{resolved}; "
                "only public internet addresses are downloaded"
            )
    return addresses[0]


def address_refusal(address: str, policy: FetchPolicy) -> str | None:
    """Why the policy refuses to connect to `address`, or None when it may.

    An IPv6 address that carries an IPv4 address (mapped, translated, compatible, NAT64, 6to4, Teredo) is judged by
    the address it carries, then by its own form: only globally routable, non-reserved addresses pass by default.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_refusal(ip, policy)
    if ip.is_loopback or ip.is_unspecified:
        return None if policy.allow_loopback else "a loopback address"
    form, embedded = _embedded_ipv4(ip)
    for inner in embedded:
        reason = _ipv4_refusal(inner, policy)
        if reason is not None:
            return reason if form in _TRANSPARENT_FORMS else f"{reason} ({inner} inside {form})"
    if form is not None:
        return None if form in _TRANSPARENT_FORMS else form
    return _ipv6_refusal(ip, policy)


# IPv4 special-purpose blocks (IANA registry) that are neither loopback, link-local nor private: never fetched.
# Listed here rather than read from `ipaddress`, whose tables differ between Python patch releases.
_IPV4_RESERVED = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network"
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "240.0.0.0/4",  # reserved, and the limited broadcast address
    )
)
_IPV4_PRIVATE = tuple(
    ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")
)
# Global unicast IPv6 space; everything outside it is reserved, multicast or local.
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_IPV6_RESERVED = tuple(
    ipaddress.IPv6Network(block)
    for block in (
        "2001::/23",  # IETF protocol assignments (Teredo, 2001::/32, is unwrapped before this)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_IPV6_PRIVATE = tuple(ipaddress.IPv6Network(block) for block in ("fc00::/7", "fec0::/10"))
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_LOW_32_BITS = 0xFFFFFFFF
# Forms whose socket or gateway connects to the embedded address itself: the embedded address is the whole story.
_MAPPED_FORM = "an IPv4-mapped address"
_TRANSLATED_FORM = "an IPv4-translated address"
_NAT64_FORM = "a NAT64 address"
_TRANSPARENT_FORMS = frozenset({_MAPPED_FORM, _TRANSLATED_FORM, _NAT64_FORM})


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str | None, tuple[ipaddress.IPv4Address, ...]]:
    """The form of an IPv6 address that carries IPv4 addresses, and those addresses; (None, ()) for a plain one."""
    low = ipaddress.IPv4Address(int(ip) & _LOW_32_BITS)
    if ip in _IPV4_MAPPED:
        return _MAPPED_FORM, (low,)
    if ip in _IPV4_TRANSLATED:
        return _TRANSLATED_FORM, (low,)
    if ip in _IPV4_COMPATIBLE:
        return "an IPv4-compatible address", (low,)
    if ip in _NAT64_WELL_KNOWN:
        return _NAT64_FORM, (low,)
    if ip in _NAT64_LOCAL_USE:
        # The local-use prefix may be longer than /96, but its addresses are never global: the last 32 bits (the
        # common /96 layout) are only checked to give a more precise reason.
        return "a local-use NAT64 address", (low,)
    if ip in _SIXTOFOUR and ip.sixtofour is not None:
        return "a 6to4 address", (ip.sixtofour,)
    if ip in _TEREDO and ip.teredo is not None:
        server, client = ip.teredo
        return "a Teredo address", (server, client)
    return None, ()


def _ipv4_refusal(ip: ipaddress.IPv4Address, policy: FetchPolicy) -> str | None:
    if ip.is_loopback or ip == ipaddress.IPv4Address(0):
        return None if policy.allow_loopback else "a loopback address"
    if ip.is_link_local:
        return None if policy.allow_private else "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if any(ip in block for block in _IPV4_RESERVED) or ip.is_reserved:
        return "a reserved address"
    if any(ip in block for block in _IPV4_PRIVATE) or not ip.is_global:
        return None if policy.allow_private else "a private address"
    return None


def _ipv6_refusal(ip: ipaddress.IPv6Address, policy: FetchPolicy) -> str | None:
    if ip.is_link_local:
        return None if policy.allow_private else "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if any(ip in block for block in _IPV6_PRIVATE):
        return None if policy.allow_private else "a private address"
    if ip not in _IPV6_GLOBAL_UNICAST or any(ip in block for block in _IPV6_RESERVED):
        return "a reserved address"
    if not ip.is_global:
        return None if policy.allow_private else "a private address"
    return None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _describe_url(url: yarl.URL) -> str:
    # Presigned URLs carry credentials in the query: keep them out of messages and logs.
    if not url.is_absolute():
        return "a relative URL"
    return str(url.with_query(None).with_fragment(None).with_user(None))


_STEP_TEXT = re.compile(r"(?<![\w/+=.])(\d+(?:\.\d+)?)\s*(?:/|of)\s*(\d+(?:\.\d+)?)(?![\w/+=])", re.IGNORECASE)
_PERCENT_TEXT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*%")
# Progress text is short; a long string is an image or a message.
MAX_PROGRESS_TEXT = 120
_PAIR_KEYS = (
    ("step", "steps"),
    ("step", "total_steps"),
    ("step", "total"),
    ("current", "total"),
    ("done", "total"),
    ("completed", "total"),
    ("value", "max"),
)
_PERCENT_KEYS = ("percent", "percentage")


def parse_progress(output: Any) -> Progress | None:
    """Read a progress value from a live job's output: `"12/30"`, `"step 12 of 30"`, `"40%"`, `0.4`,
    `{"step": 12, "steps": 30}`, `{"percent": 40}`, `{"progress": ...}`. None when the output is not progress."""
    return _progress(output, depth=0)


def _progress(value: Any, depth: int) -> Progress | None:
    if depth > 2:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        # A bare fraction; a bare integer is too ambiguous to read as progress.
        return Progress(value, 1.0) if 0.0 <= value <= 1.0 else None
    if isinstance(value, str):
        return _progress_text(value)
    if isinstance(value, dict):
        for done_key, total_key in _PAIR_KEYS:
            progress = _pair(value.get(done_key), value.get(total_key))
            if progress is not None:
                return progress
        for key in _PERCENT_KEYS:
            percent = _number(value.get(key))
            if percent is not None:
                return Progress(percent, 100.0)
        if "progress" in value:
            return _progress(value["progress"], depth + 1)
    return None


def _progress_text(text: str) -> Progress | None:
    if len(text) > MAX_PROGRESS_TEXT:
        return None
    step = _STEP_TEXT.search(text)
    if step:
        return _pair(float(step.group(1)), float(step.group(2)))
    percent = _PERCENT_TEXT.search(text)
    if percent:
        return Progress(float(percent.group(1)), 100.0)
    return None


def _pair(done: Any, total: Any) -> Progress | None:
    done_value, total_value = _number(done), _number(total)
    if done_value is None or total_value is None or total_value <= 0 or done_value < 0:
        return None
    return Progress(done_value, total_value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
