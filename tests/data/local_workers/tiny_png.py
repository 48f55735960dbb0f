"""Tiny real PNG images for the local worker handlers (standard library only: the handlers run in the worker SDK's
virtualenv, which need not have Pillow)."""

from __future__ import annotations

import base64
import struct
import zlib

SIDE = 8


def png(seed: int) -> bytes:
    """An 8x8 RGB PNG whose colour follows the seed."""
    colour = bytes(((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256))
    rows = b"".join(b"\x00" + colour * SIDE for _ in range(SIDE))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png_base64(seed: int) -> str:
    return base64.b64encode(png(seed)).decode()
