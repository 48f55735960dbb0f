"""The download guard's address classifier: IPv4 addresses hidden in IPv6 forms are judged by what they embed, and
only globally routable, non-reserved addresses pass by default."""

from __future__ import annotations

import pytest

from runpod_client import FetchPolicy
from runpod_client.outputs import address_refusal

DEFAULT = FetchPolicy()
LOOPBACK = FetchPolicy(allow_loopback=True)
PRIVATE = FetchPolicy(allow_private=True)


@pytest.mark.parametrize(
    ("address", "policy", "refused"),
    [
        # IPv4-compatible (::a.b.c.d, deprecated): judged by the embedded address, and never fetched.
        ("::127.0.0.1", DEFAULT, "a loopback address"),
        ("::a9fe:a9fe", DEFAULT, "a link-local address"),
        ("::10.0.0.1", PRIVATE, "an IPv4-compatible address"),
        ("::93.184.216.34", DEFAULT, "an IPv4-compatible address"),
        # IPv4-mapped and IPv4-translated: the embedded address is the one connected to.
        ("::ffff:127.0.0.1", DEFAULT, "a loopback address"),
        ("::ffff:0:a00:1", DEFAULT, "a private address"),
        ("::ffff:93.184.216.34", DEFAULT, None),
        ("::ffff:127.0.0.1", LOOPBACK, None),
        # NAT64, well-known prefix: the gateway connects to the embedded address.
        ("64:ff9b::7f00:1", DEFAULT, "a loopback address"),
        ("64:ff9b::a9fe:a9fe", DEFAULT, "a link-local address"),
        ("64:ff9b::c0a8:1", DEFAULT, "a private address"),
        ("64:ff9b::5db8:d822", DEFAULT, None),
        # NAT64, local-use prefix: embedded address judged, and the prefix itself is not global.
        ("64:ff9b:1::a00:1", DEFAULT, "a private address"),
        ("64:ff9b:1::5db8:d822", DEFAULT, "a local-use NAT64 address"),
        # 6to4: the relay reaches the embedded address.
        ("2002:7f00:1::1", DEFAULT, "a loopback address"),
        ("2002:a9fe:a9fe::1", DEFAULT, "a link-local address"),
        ("2002:c0a8:101::1", DEFAULT, "a private address"),
        ("2002:5db8:d822::1", DEFAULT, "a 6to4 address"),
        ("2002:7f00:1::1", LOOPBACK, "a 6to4 address"),
        # Teredo: server and (obfuscated) client are both embedded.
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", DEFAULT, "a loopback address"),
        ("2001:0:a00:1:8000:63bf:a2a7:29dd", DEFAULT, "a private address"),
        ("2001:0:4136:e378:8000:63bf:a2a7:29dd", DEFAULT, "a Teredo address"),
        # 192.0.0.0/24 (IETF protocol assignments) and the other special-purpose IPv4 blocks.
        ("192.0.0.1", DEFAULT, "a reserved address"),
        ("192.0.0.170", PRIVATE, "a reserved address"),
        ("192.0.2.10", DEFAULT, "a reserved address"),
        ("198.51.100.7", DEFAULT, "a reserved address"),
        ("203.0.113.9", DEFAULT, "a reserved address"),
        ("198.18.0.1", DEFAULT, "a reserved address"),
        ("192.88.99.1", DEFAULT, "a reserved address"),
        ("240.0.0.1", DEFAULT, "a reserved address"),
        ("255.255.255.255", PRIVATE, "a reserved address"),
        ("0.1.2.3", DEFAULT, "a reserved address"),
        # Special-purpose and unallocated IPv6 space.
        ("100::1", DEFAULT, "a reserved address"),
        ("2001:db8::1", DEFAULT, "a reserved address"),
        ("2001:2::1", DEFAULT, "a reserved address"),
        ("3fff::1", DEFAULT, "a reserved address"),
        ("5f00::1", DEFAULT, "a reserved address"),
        ("4000::1", DEFAULT, "a reserved address"),
        ("fec0::1", DEFAULT, "a private address"),
        ("ff02::1", PRIVATE, "a multicast address"),
        # What stays as it was.
        ("93.184.216.34", DEFAULT, None),
        ("2606:4700::6810:85e5", DEFAULT, None),
        ("::1", DEFAULT, "a loopback address"),
        ("::", DEFAULT, "a loopback address"),
        ("fd00::1", PRIVATE, None),
        ("::ffff:10.0.0.1", PRIVATE, None),
    ],
)
def test_embedded_and_special_purpose_addresses(address: str, policy: FetchPolicy, refused: str | None) -> None:
    """Each IPv6 form is judged by the IPv4 address it embeds; special-purpose blocks are refused, public ones pass."""
    reason = address_refusal(address, policy)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith(refused), reason
