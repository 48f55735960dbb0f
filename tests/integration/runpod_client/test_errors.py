"""Every error class the client raises, provoked over real HTTP; the API key never leaks into any of them."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from runpod_client import (
    NO_RETRY,
    AuthenticationError,
    BadRequestError,
    InvalidResponseError,
    NotFoundError,
    PayloadTooLargeError,
    Policy,
    RateLimitedError,
    RetryPolicy,
    RunPodClient,
    RunPodConnectionError,
    RunPodError,
    RunPodTimeoutError,
    ServerError,
)
from runpod_emulator import Emulator, FaultKind, RateLimit
from tests.plugins.emulator import FAST_RETRY_POLICY, client_for

PROMPT = {"prompt": "a red bicycle"}
SHORT_TIMEOUT = aiohttp.ClientTimeout(total=0.2)


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_wrong_key_is_an_authentication_error(
    emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """A 401 becomes AuthenticationError carrying the status and RunPod's JSON body."""
    client = RunPodClient(emulator_session, emulator.endpoint_id, "rpa_wrong_key", base_url=emulator.base_url)
    with pytest.raises(AuthenticationError) as caught:
        await client.health()
    assert caught.value.status == 401
    assert caught.value.body == {"error": "Unauthorized"}


async def test_unknown_endpoint_is_not_found_with_a_text_body(
    emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """A wrong endpoint id is a 404 whose non-JSON body is kept as text."""
    client = RunPodClient(emulator_session, "no-such-endpoint", emulator.api_key, base_url=emulator.base_url)
    with pytest.raises(NotFoundError) as caught:
        await client.health()
    assert caught.value.body == "404 page not found"


async def test_policy_out_of_range_is_a_bad_request(emulator_client: RunPodClient) -> None:
    """RunPod refuses a ttl under 10 s with a 400."""
    with pytest.raises(BadRequestError) as caught:
        await emulator_client.run(PROMPT, policy=Policy(ttl=5_000))
    assert "ttl" in str(caught.value)


async def test_input_over_ten_megabytes_is_payload_too_large(emulator_client: RunPodClient) -> None:
    """A /run body over RunPod's 10 MB limit is refused with 413."""
    with pytest.raises(PayloadTooLargeError):
        await emulator_client.run({"prompt": "x", "init_image": "A" * (11 * 1024 * 1024)})


async def test_rate_limit_is_raised_with_retry_after_once_retries_run_out(
    emulator: Emulator, emulator_client: RunPodClient
) -> None:
    """Beyond the limit every attempt meets a 429; the error carries the server's Retry-After."""
    emulator.update_scenario(rate_limits={"health": RateLimit(requests=1, per_s=10)})
    await emulator_client.health()
    with pytest.raises(RateLimitedError) as caught:
        await emulator_client.health()
    assert caught.value.retry_after is not None
    assert 1 <= caught.value.retry_after <= 10
    assert emulator.counters.request_count("health", 429) == FAST_RETRY_POLICY.max_attempts


async def test_persistent_server_errors_raise_server_error(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A 500 on every attempt ends in ServerError."""
    emulator.script_faults("health", *[FaultKind.SERVER_ERROR] * FAST_RETRY_POLICY.max_attempts)
    with pytest.raises(ServerError) as caught:
        await emulator_client.health()
    assert caught.value.status == 500


async def test_refused_connection_is_a_connection_error_that_was_not_sent(
    emulator_session: aiohttp.ClientSession,
) -> None:
    """Nothing listening: RunPodConnectionError, flagged as certainly not sent."""
    client = RunPodClient(emulator_session, "ep", "key", base_url=f"http://127.0.0.1:{free_port()}/v2", retry=NO_RETRY)
    with pytest.raises(RunPodConnectionError) as caught:
        await client.health()
    assert caught.value.maybe_sent is False


async def test_reset_connection_is_a_connection_error_that_may_have_been_sent(
    emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """A connection reset after the request was read may have reached RunPod."""
    # A POST: aiohttp itself repeats an idempotent GET once after a reset.
    emulator.script_faults("purge-queue", FaultKind.RESET)
    client = client_for(emulator, emulator_session, retry=NO_RETRY)
    with pytest.raises(RunPodConnectionError) as caught:
        await client.purge_queue()
    assert caught.value.maybe_sent is True


async def test_slow_reply_is_a_timeout_error(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """A reply slower than the client's timeout raises RunPodTimeoutError."""
    emulator.script_faults("health", FaultKind.SLOW)
    client = client_for(emulator, emulator_session, retry=NO_RETRY, timeout=SHORT_TIMEOUT)
    with pytest.raises(RunPodTimeoutError) as caught:
        await client.health()
    assert caught.value.maybe_sent is True


class EchoServer:
    """A misbehaving server: it answers with an HTML page, or echoes the request's Authorization header."""

    def __init__(self) -> None:
        self.status = 200

    async def handle(self, request: web.Request) -> web.Response:
        if self.status == 200:
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        echo = request.headers.get("Authorization", "")
        return web.json_response({"error": f"bad credentials: {echo}"}, status=self.status)


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[EchoServer, str]]:
    server = EchoServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield server, f"http://127.0.0.1:{runner.addresses[0][1]}/v2"
    finally:
        await runner.cleanup()


async def test_html_success_page_is_an_invalid_response(
    echo_server: tuple[EchoServer, str], emulator_session: aiohttp.ClientSession
) -> None:
    """A 200 that is not JSON (a proxy page) raises InvalidResponseError, not a crash."""
    _, base_url = echo_server
    client = RunPodClient(emulator_session, "ep", "key", base_url=base_url)
    with pytest.raises(InvalidResponseError):
        await client.health()


SECRET_KEY = "rpa_SECRET_0123456789abcdef"


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 502])
async def test_api_key_never_appears_in_errors_or_logs(
    status: int,
    echo_server: tuple[EchoServer, str],
    emulator_session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Even when the server echoes the key back, no message, repr, body or log record shows it."""
    server, base_url = echo_server
    server.status = status
    client = RunPodClient(
        emulator_session,
        "ep",
        SECRET_KEY,
        base_url=base_url,
        retry=RetryPolicy(max_attempts=2, base_delay_s=0, max_retry_after_s=0),
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RunPodError) as caught:
        await client.status("job-1")
    rendered = [str(caught.value), repr(caught.value), repr(client), str(getattr(caught.value, "body", ""))]
    rendered += [record.getMessage() for record in caplog.records]
    assert "bad credentials" in str(caught.value)
    assert not [text for text in rendered if SECRET_KEY in text]


async def test_api_key_never_appears_in_connection_errors(
    emulator_session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection failures and their retry logs name the host, never the key."""
    client = RunPodClient(
        emulator_session,
        "ep",
        SECRET_KEY,
        base_url=f"http://127.0.0.1:{free_port()}/v2",
        retry=RetryPolicy(max_attempts=2, base_delay_s=0),
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RunPodConnectionError) as caught:
        await client.run(PROMPT)
    rendered = [str(caught.value), repr(caught.value), *(record.getMessage() for record in caplog.records)]
    assert "127.0.0.1" in str(caught.value)
    assert not [text for text in rendered if SECRET_KEY in text]


async def test_every_attempt_is_reported_to_the_response_hook(emulator: Emulator) -> None:
    """The hook hears each attempt with its status (retries included), so metrics can count requests and 429s."""
    seen: list[tuple[str, str]] = []
    emulator.script_faults("health", "server_error", "rate_limited")
    async with aiohttp.ClientSession() as session:
        client = RunPodClient(
            session,
            emulator.endpoint_id,
            emulator.api_key,
            base_url=emulator.base_url,
            retry=FAST_RETRY_POLICY,
            on_response=lambda operation, outcome: seen.append((operation, outcome)),
        )
        await client.health()
    assert seen == [("health", "500"), ("health", "429"), ("health", "200")]
