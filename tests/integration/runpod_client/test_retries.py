"""Retry behaviour over real HTTP: safe operations recover from faults; a paid /run is never sent twice."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runpod_client import (
    JobStatus,
    RetryPolicy,
    RunPodClient,
    RunPodConnectionError,
    RunPodError,
    RunPodTimeoutError,
    ServerError,
)
from runpod_emulator import Emulator, FaultKind, run_emulator
from tests.plugins.emulator import client_for, emulator_config

PROMPT = {"prompt": "a paper boat"}
SHORT_TIMEOUT = aiohttp.ClientTimeout(total=0.15)


async def test_status_recovers_from_server_errors(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """Two 500s in a row are retried and the third /status answers."""
    job = await emulator_client.run(PROMPT)
    emulator.script_faults("status", FaultKind.SERVER_ERROR, FaultKind.SERVER_ERROR)
    assert (await emulator_client.status(job.id)).id == job.id
    assert emulator.counters.request_count("status", 500) == 2
    assert emulator.counters.request_count("status", 200) == 1


async def test_cancel_recovers_from_a_connection_reset(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A reset /cancel is sent again, and the job ends CANCELLED."""
    emulator.update_scenario(workers=0)
    job = await emulator_client.run(PROMPT)
    emulator.script_faults("cancel", FaultKind.RESET)
    assert (await emulator_client.cancel(job.id)).status == JobStatus.CANCELLED
    assert emulator.counters.request_count("cancel") == 2


async def test_health_recovers_from_a_slow_reply(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """A /health that times out is asked again."""
    emulator.script_faults("health", FaultKind.SLOW)
    client = client_for(emulator, emulator_session, timeout=SHORT_TIMEOUT)
    assert (await client.health()).jobs.completed == 0
    assert emulator.counters.request_count("health") == 2


async def test_retry_after_is_honoured(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """After a 429 with `Retry-After: 1`, the next attempt waits a second."""
    emulator.update_scenario(fault_retry_after_s=1)
    emulator.script_faults("health", FaultKind.RATE_LIMITED)
    client = client_for(emulator, emulator_session, retry=RetryPolicy(base_delay_s=0.001, max_retry_after_s=5))
    started = time.monotonic()
    await client.health()
    assert time.monotonic() - started >= 0.95


async def test_retry_after_is_capped(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """A `Retry-After: 30` waits only the policy's cap."""
    emulator.update_scenario(fault_retry_after_s=30)
    emulator.script_faults("health", FaultKind.RATE_LIMITED)
    client = client_for(emulator, emulator_session, retry=RetryPolicy(base_delay_s=0.001, max_retry_after_s=0.2))
    started = time.monotonic()
    await client.health()
    assert 0.19 <= time.monotonic() - started < 2


async def test_run_is_retried_after_a_429(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A 429 means RunPod did not take the job: /run is sent again and exactly one job exists."""
    emulator.script_faults("run", FaultKind.RATE_LIMITED)
    job = await emulator_client.run(PROMPT)
    assert emulator.counters.request_count("run", 429) == 1
    assert emulator.counters.request_count("run", 200) == 1
    assert emulator.snapshot()["totals"]["submitted"] == 1
    assert emulator.job(job.id) is not None


async def test_run_is_not_retried_after_a_reset(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A reset after RunPod read the request may hide a started job: /run is not sent again."""
    emulator.script_faults("run", FaultKind.RESET)
    with pytest.raises(RunPodConnectionError) as caught:
        await emulator_client.run(PROMPT)
    assert caught.value.maybe_sent
    assert emulator.counters.request_count("run") == 1
    assert emulator.snapshot()["totals"]["submitted"] == 1


async def test_run_is_not_retried_after_a_server_error(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A 500 on /run is raised, not retried: the job may exist."""
    emulator.script_faults("run", FaultKind.SERVER_ERROR)
    with pytest.raises(ServerError):
        await emulator_client.run(PROMPT)
    assert emulator.counters.request_count("run") == 1


async def test_run_is_not_retried_after_a_timeout(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """A /run that times out is raised as a timeout, and sent once."""
    emulator.script_faults("run", FaultKind.SLOW)
    client = client_for(emulator, emulator_session, timeout=SHORT_TIMEOUT)
    with pytest.raises(RunPodTimeoutError) as caught:
        await client.run(PROMPT)
    assert caught.value.maybe_sent
    assert emulator.counters.request_count("run") == 1


@dataclass(frozen=True)
class FixedDelay(RetryPolicy):
    """A retry policy that always waits the same time (to start a server in between)."""

    fixed_s: float = 0.3

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        return self.fixed_s


async def test_run_is_retried_after_a_refused_connection(emulator_session: aiohttp.ClientSession) -> None:
    """A refused connection never reached RunPod: /run is retried and succeeds once the endpoint is up."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = emulator_config(port=port)
    client = RunPodClient(
        emulator_session,
        config.endpoint_id,
        config.api_key,
        base_url=f"http://127.0.0.1:{port}/v2",
        retry=FixedDelay(max_attempts=2),
    )
    submitting = asyncio.create_task(client.run(PROMPT))
    await asyncio.sleep(0.1)
    async with run_emulator(config) as emulator:
        job = await submitting
        assert emulator.counters.request_count("run") == 1
        assert emulator.job(job.id) is not None


FAULTS = st.sampled_from(list(FaultKind))
PROPERTY_POLICY = RetryPolicy(max_attempts=5, base_delay_s=0.0005, max_delay_s=0.002, max_retry_after_s=0.002)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=st.lists(FAULTS, max_size=6))
async def test_run_is_never_sent_twice_under_any_faults(
    faults: list[FaultKind], emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """Whatever faults /run meets, RunPod receives it at most once beyond the 429s, and only 429s are retried."""
    emulator.reset()
    emulator.update_scenario(slow_reply_s=0.3)
    emulator.script_faults("run", *faults)
    client = client_for(emulator, emulator_session, retry=PROPERTY_POLICY, timeout=SHORT_TIMEOUT)
    try:
        job = await client.run(PROMPT)
    except RunPodError:
        job = None
    leading_429s = 0
    while leading_429s < len(faults) and faults[leading_429s] == FaultKind.RATE_LIMITED:
        leading_429s += 1
    counters = emulator.counters
    taken = counters.request_count("run") - counters.request_count("run", 429)
    assert taken <= 1
    assert counters.request_count("run") == min(leading_429s + 1, PROPERTY_POLICY.max_attempts)
    assert emulator.snapshot()["totals"].get("submitted", 0) <= 1
    if job is not None:
        assert emulator.job(job.id) is not None
