"""Pytest fixtures for the RunPod emulator (in-process, on a free loopback port).

`emulator` serves a fast scenario (jobs finish in well under a second); override the `emulator_scenario` fixture in
a test module, or call `emulator.update_scenario(...)`, for another one. `emulator_client` is a `RunPodClient` on it
with tiny retry delays.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from runpod_client import Job, RetryPolicy, RunPodClient
from runpod_emulator import Emulator, EmulatorConfig, Scenario, run_emulator

EMULATOR_API_KEY = "rpa_emulator_test_key_0123456789"
EMULATOR_ENDPOINT_ID = "test-endpoint"

# Delays a test barely notices: a job takes about a quarter of a second, cold start included.
FAST_TIMINGS: dict[str, Any] = {
    "cold_start_s": 0.05,
    "queue_delay_s": 0.01,
    "execution_s": 0.2,
    "steps": 4,
    "idle_timeout_s": 5.0,
    "image_size": 128,
    "webhook_retry_delay_s": 0.05,
    "webhook_timeout_s": 2.0,
    "slow_reply_s": 0.5,
    "fault_retry_after_s": 0,
}
FAST_RETRY_POLICY = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01, max_retry_after_s=0.05)
FAST_CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=5.0, sock_connect=2.0)


def fast_scenario(**changes: Any) -> Scenario:
    """The test suite's quick scenario, with some fields changed."""
    return Scenario.model_validate({**FAST_TIMINGS, **changes})


def emulator_config(scenario: Scenario | None = None, **changes: Any) -> EmulatorConfig:
    """A config on a free loopback port with the suite's key and endpoint id."""
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "api_key": EMULATOR_API_KEY,
        "endpoint_id": EMULATOR_ENDPOINT_ID,
        "scenario": scenario or fast_scenario(),
    }
    return EmulatorConfig(**{**fields, **changes})


def client_for(
    emulator: Emulator,
    session: aiohttp.ClientSession,
    *,
    retry: RetryPolicy = FAST_RETRY_POLICY,
    timeout: aiohttp.ClientTimeout = FAST_CLIENT_TIMEOUT,
) -> RunPodClient:
    """A RunPod client pointed at the emulator."""
    return RunPodClient(
        session, emulator.endpoint_id, emulator.api_key, base_url=emulator.base_url, retry=retry, timeout=timeout
    )


@pytest.fixture
def emulator_scenario() -> Scenario:
    """The scenario the `emulator` fixture starts with; override it in a module for another."""
    return fast_scenario()


@pytest.fixture
async def emulator(emulator_scenario: Scenario) -> AsyncIterator[Emulator]:
    """A running emulator on a free loopback port."""
    async with run_emulator(emulator_config(emulator_scenario)) as running:
        yield running


@pytest.fixture
async def emulator_session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session for talking to the emulator (and downloading its images)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def emulator_client(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> RunPodClient:
    """A RunPod client on the emulator, with tiny retry delays."""
    return client_for(emulator, emulator_session)


async def poll_job(
    client: RunPodClient,
    job_id: str,
    *,
    until: Callable[[Job], bool] = lambda job: job.is_finished,
    timeout_s: float = 5.0,
    interval_s: float = 0.01,
) -> tuple[Job, list[Job]]:
    """Poll /status until `until(job)` holds; return the last job and every job seen, in order."""
    seen: list[Job] = []
    async with asyncio.timeout(timeout_s):
        while True:
            job = await client.status(job_id)
            seen.append(job)
            if until(job):
                return job, seen
            await asyncio.sleep(interval_s)
