"""GPU-time budgets through `JobService` on a real Redis and the emulator: two bot processes submitting at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jobs.presets import RequestOptions
from jobs.service import GpuBudgetError, JobService, RunSettings
from storage.connection import create_client
from storage.models import Requester
from storage.store import JobStore, Limits, StoreConfig
from tests.integration.jobs.conftest import FAST_POLICY, Core

MEMBER = Requester(user_id=1001, guild_id=2001, channel_id=3001)
# Room for one job at the store's default estimate (30 s an image), not two.
BUDGET = Limits(member_daily_gpu_ms=45_000)


@pytest.fixture
async def other_service(core: Core, redis_url: str) -> AsyncIterator[JobService]:
    """A second service on its own Redis connection, as another bot process has."""
    client = create_client(redis_url)
    try:
        store = JobStore(client, StoreConfig(submit_lease_ms=400))
        yield JobService(store, core.clients, core.catalog, policy=FAST_POLICY, run_settings=RunSettings(limits=BUDGET))
    finally:
        await client.aclose()


async def test_two_services_submitting_at_once_cannot_both_pass_a_budget_with_room_for_one(
    core: Core, other_service: JobService
) -> None:
    """Two processes each submit a one-image job at once under a budget with room for one: one /run, one refusal."""
    service = core.service_with(RunSettings(limits=BUDGET))
    results = await asyncio.gather(
        service.submit(RequestOptions(prompt="one", count=1), MEMBER),
        other_service.submit(RequestOptions(prompt="two", count=1), MEMBER),
        return_exceptions=True,
    )
    refused = [result for result in results if isinstance(result, GpuBudgetError)]
    assert len(refused) == 1, results
    assert "Your GPU budget today has 15 s of 45 s left, and this job needs about 30 s" in str(refused[0])
    assert core.emulator.snapshot()["received"]["run"] == 1
