"""Worker outputs whose image URLs hide a local address in an IPv6 form, or point into 192.0.0.0/24, are refused
before any connection, with the reason; redirects towards such addresses too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from runpod_client import FetchPolicy, Job, RunPodClient, UnsafeURLError, extract_images
from runpod_emulator import Emulator
from tests.plugins.emulator import poll_job

# Short, so that a URL the guard wrongly lets through fails fast instead of hanging on an unroutable address.
QUICK = FetchPolicy(timeout_s=1)
QUICK_LOOPBACK = FetchPolicy(timeout_s=1, allow_loopback=True)


async def custom_job(emulator: Emulator, client: RunPodClient, output: object) -> Job:
    """Run a job of the `custom` personality whose output is `output`, to its end."""
    emulator.update_scenario(custom_output=output, execution_s=0.02)
    submitted = await client.run({"prompt": "[emulator:custom] a hidden address"})
    job, _ = await poll_job(client, submitted.id)
    return job


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("[::127.0.0.1]", "loopback"),  # IPv4-compatible
        ("[::ffff:0:a9fe:a9fe]", "link-local"),  # IPv4-translated
        ("[64:ff9b::a9fe:a9fe]", "link-local"),  # NAT64, well-known prefix
        ("[64:ff9b:1::a00:1]", "private"),  # NAT64, local-use prefix
        ("[2002:a9fe:a9fe::1]", "link-local"),  # 6to4
        ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "loopback"),  # Teredo, client 127.0.0.1
        ("192.0.0.170", "reserved"),  # IETF protocol assignments
    ],
)
async def test_worker_url_hiding_a_local_address_is_refused_with_the_reason(
    host: str, reason: str, emulator: Emulator, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """An image URL on an IPv6 form embedding a local IPv4 address, or in 192.0.0.0/24, is refused and says why."""
    job = await custom_job(emulator, emulator_client, {"image_url": f"http://{host}/latest/meta-data"})
    with pytest.raises(UnsafeURLError, match=reason) as caught:
        await extract_images(job.output, session=emulator_session, policy=QUICK)
    assert "refusing to download" in str(caught.value)


@pytest.fixture
async def redirector() -> AsyncIterator[str]:
    """A server on loopback whose /hop redirects to the URL in its `to` query parameter."""

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/hop", hop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_redirect_to_a_6to4_form_of_a_private_address_is_refused(
    redirector: str, emulator: Emulator, emulator_client: RunPodClient, emulator_session: aiohttp.ClientSession
) -> None:
    """A redirect from an allowed host towards a 6to4 address embedding 10.0.0.1 is refused as private."""
    target = "http://[2002:a00:1::1]/image.png"
    job = await custom_job(emulator, emulator_client, {"image_url": f"{redirector}/hop?to={target}"})
    with pytest.raises(UnsafeURLError, match="private"):
        await extract_images(job.output, session=emulator_session, policy=QUICK_LOOPBACK)
