"""The bot's HTTP server: /healthz, /readyz (Redis and Discord), and /metrics matching what happened."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runpod_bot.core import Role
from runpod_bot.web import create_app, serve
from storage.connection import connect
from storage.embedded import EmbeddedRedis
from tests.e2e.bot.conftest import Harness, cards, results


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a metrics page, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
async def own_redis() -> AsyncIterator[EmbeddedRedis]:
    """A Redis this test may stop."""
    with tempfile.TemporaryDirectory(prefix="rpb-ready-") as directory:
        server = EmbeddedRedis(data_dir=Path(directory))
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


async def test_metrics_match_a_scripted_run(harness: Harness) -> None:
    """After one completed and one failed job, /metrics counts exactly those, and the requests RunPod saw."""
    async with harness.running() as bot:
        await harness.imagine(prompt="a good one")
        await harness.imagine(user_id=harness.bob, prompt="[emulator:fail-plain] a bad one")
        await harness.wait_for_messages(
            lambda found: (
                len(results(found)) == 1 and any(card["embeds"][0]["title"] == "Failed" for card in cards(found))
            )
        )
        core = bot.deps.core
        app = create_app(metrics=core.metrics, store=core.store, readiness=bot.readiness)
        async with serve(app, port=0) as address, aiohttp.ClientSession() as http:
            async with http.get(f"{address}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                page = samples(await response.text())
            async with http.get(f"{address}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{address}/readyz") as response:
                assert response.status == 200
                assert (await response.json())["checks"] == {"redis": "ok", "discord": "ok"}
    assert page[("runpod_bot_jobs_submitted_total", (("model", "default"),))] == 2
    assert page[("runpod_bot_jobs_finished_total", (("state", "COMPLETED"),))] == 1
    assert page[("runpod_bot_jobs_finished_total", (("state", "FAILED"),))] == 1
    assert page[("runpod_bot_runpod_requests_total", (("operation", "run"), ("status", "200")))] == 2
    status_calls = page[("runpod_bot_runpod_requests_total", (("operation", "status"), ("status", "200")))]
    assert status_calls == harness.emulator.counters.request_count("status", 200)
    assert page[("runpod_bot_active_jobs", (("state", "QUEUED"),))] == 0
    assert page[("runpod_bot_delivery_lag_seconds_count", ())] == 2
    assert page[("runpod_bot_poll_cycle_seconds_count", ())] > 0
    assert ("runpod_bot_due_lag_seconds", (("endpoint", harness.emulator.endpoint_id),)) in page


async def test_readyz_turns_unready_when_redis_stops(harness: Harness, own_redis: EmbeddedRedis) -> None:
    """A poller process is ready while its Redis answers and says why it is not once Redis stops."""
    redis = await connect(own_redis.url)
    bot = harness.make_bot(Role.POLLER)
    bot.deps = replace(bot.deps, redis=redis)
    app = create_app(readiness=bot.readiness)
    try:
        async with serve(app, port=0) as address, aiohttp.ClientSession() as http:
            async with http.get(f"{address}/readyz") as response:
                assert response.status == 200
            await own_redis.stop()
            async with http.get(f"{address}/readyz") as response:
                assert response.status == 503
                body = await response.json()
    finally:
        await redis.aclose()
    assert body["ready"] is False
    assert body["checks"]["redis"].startswith("unreachable")
