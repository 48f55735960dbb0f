"""The Discord-free core wired for real: a store on the test Redis, the emulator over HTTP, a recording notifier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
import redis.asyncio as aioredis

from jobs.notifier import Delivery, DeliveryFailed, JobResult
from jobs.policy import PollPolicy
from jobs.poller import Poller, PollerSettings
from jobs.presets import ModelCatalog, default_catalog
from jobs.service import JobService, RunSettings
from runpod_client import RunPodClient
from runpod_client.outputs import FetchPolicy
from runpod_emulator import Emulator, Scenario
from storage.models import JobState, TrackedJob
from storage.store import JobStore, StoreConfig
from tests.plugins.emulator import client_for, fast_scenario
from tests.waiting import wait_until

__all__ = ["FAST_POLICY", "FAST_POLLER", "Core", "RecordingNotifier", "polling", "wait_until"]

# Tight numbers so a test's jobs finish in well under a second each.
FAST_POLICY = PollPolicy(
    first_poll_ms=50,
    queued_min_ms=50,
    queued_max_ms=200,
    next_in_line_ms=50,
    running_min_ms=30,
    running_max_ms=200,
    overdue_ms=50,
    delivery_lease_ms=400,
)
FAST_POLLER = PollerSettings(
    concurrency=64,
    claim_lease_ms=400,
    status_budget_per_s=400,
    idle_sleep_s=0.02,
    delivery_retry_base_ms=50,
    error_retry_ms=50,
)
LOOPBACK_FETCH = FetchPolicy(allow_loopback=True, timeout_s=5)


@dataclass
class RecordingNotifier:
    """Records every call, like a delivery that posts nothing; can be told to fail or hang for some jobs."""

    updates: list[TrackedJob] = field(default_factory=list)
    finished: dict[str, list[JobResult]] = field(default_factory=dict)
    fail_times: dict[str, int] = field(default_factory=dict)
    # Jobs whose next delivery is refused for good (`DeliveryFailed(final=True)` with this reason), once.
    refuse: dict[str, str] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    # Jobs whose deliveries take this long (seconds): a slow upload, or Discord's rate limits.
    slow_s: dict[str, float] = field(default_factory=dict)
    on_finish: Callable[[TrackedJob, JobResult], None] | None = None

    async def job_updated(self, job: TrackedJob) -> None:
        self.updates.append(job)

    async def job_finished(self, job: TrackedJob, result: JobResult) -> Delivery:
        if job.jid in self.hang:
            await asyncio.Event().wait()
        if job.jid in self.slow_s:
            await asyncio.sleep(self.slow_s[job.jid])
        if self.fail_times.get(job.jid, 0) > 0:
            self.fail_times[job.jid] -= 1
            raise RuntimeError("delivery failed (test)")
        if job.jid in self.refuse:
            raise DeliveryFailed(self.refuse.pop(job.jid), final=True)
        self.finished.setdefault(job.jid, []).append(result)
        if self.on_finish is not None:
            self.on_finish(job, result)
        return Delivery(message_ids=[len(self.finished)])

    def outcome(self, jid: str) -> JobState:
        (result,) = self.finished[jid]
        return result.outcome


@dataclass
class Core:
    store: JobStore
    catalog: ModelCatalog
    client: RunPodClient
    service: JobService
    http: aiohttp.ClientSession
    emulator: Emulator

    @property
    def clients(self) -> dict[str, RunPodClient]:
        return {self.client.endpoint_id: self.client}

    def poller(self, notifier: RecordingNotifier, settings: PollerSettings = FAST_POLLER) -> Poller:
        return Poller(
            self.store,
            self.clients,
            notifier,
            http=self.http,
            fetch_policy=LOOPBACK_FETCH,
            policy=FAST_POLICY,
            settings=settings,
        )

    def service_with(self, run_settings: RunSettings) -> JobService:
        return JobService(self.store, self.clients, self.catalog, policy=FAST_POLICY, run_settings=run_settings)


@pytest.fixture
def emulator_scenario() -> Scenario:
    """Enough workers for a few hundred quick jobs, and RunPod's policy bounds relaxed for short time-outs."""
    return fast_scenario(workers=50, strict_limits=False)


@pytest.fixture
async def core(redis: aioredis.Redis, emulator: Emulator) -> AsyncIterator[Core]:
    """Store, client, catalog and service on the emulator, with quotas off."""
    async with aiohttp.ClientSession() as http:
        client = client_for(emulator, http)
        catalog = default_catalog(emulator.endpoint_id)
        store = JobStore(redis, StoreConfig(submit_lease_ms=400))
        service = JobService(
            store, {client.endpoint_id: client}, catalog, policy=FAST_POLICY, run_settings=RunSettings()
        )
        yield Core(store, catalog, client, service, http, emulator)


@asynccontextmanager
async def polling(poller: Poller) -> AsyncIterator[Poller]:
    """Run the poller's loop for the duration of the block, then stop it gracefully."""
    task = asyncio.create_task(poller.run())
    try:
        yield poller
    finally:
        await poller.stop()
        await task
