"""`runpod-bot usage`, run as a real process on the test's Redis: every server's GPU time for a month (tab-separated
or JSON), one server's models and members, the command line's own jobs apart, and a wrong month refused."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from runpod_emulator import Emulator
from storage.models import JobState
from storage.store import JobStore, NewJob, StoreConfig
from storage.usage import UsageCharge
from tests.integration.test_cli_jobs import emulator_env, runpod_bot

ENDPOINT = "ep-cli-usage"
JUNE = datetime(2025, 6, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short working directory (the embedded Redis' socket would live under it)."""
    with tempfile.TemporaryDirectory(prefix="rpb-usage-") as directory:
        yield Path(directory)


async def finished_job(
    store: JobStore, user_id: int, guild_id: int | None, gpu_ms: int, *, model: str = "sdxl", cost: int | None = None
) -> None:
    """A job of the bot that ran `gpu_ms` on a GPU in June 2025, finished as the poller finishes one."""
    jid = uuid.uuid4().hex
    await store.create(NewJob(jid=jid, endpoint_id=ENDPOINT, model=model, user_id=user_id, guild_id=guild_id))
    job = await store.get(jid)
    assert job is not None
    await store.attach_runpod_id(job, f"rp-{jid}", first_poll_delay_ms=0)
    (claimed,) = (await store.claim_due(ENDPOINT, limit=1, lease_ms=10_000)).jobs
    charge = UsageCharge(
        user_id=user_id,
        guild_id=guild_id,
        model=model,
        gpu_ms=gpu_ms,
        queue_ms=500,
        at=JUNE,
        cost_micros=cost,
        currency="USD" if cost is not None else None,
    )
    assert await store.finalize_begin(claimed, JobState.COMPLETED, lease_ms=10_000, usage=charge) is not None


async def junes_jobs(redis: aioredis.Redis) -> None:
    """Two servers' jobs and a DM's, under the bot's prefix."""
    store = JobStore(redis, StoreConfig())
    await finished_job(store, 1, 100, 4000, cost=2000)
    await finished_job(store, 2, 100, 6000, model="flux")
    await finished_job(store, 3, 200, 1500)
    await finished_job(store, 1, None, 500)


def table(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines()]


async def test_every_servers_month_is_listed_in_tab_separated_columns(
    workdir: Path, redis: aioredis.Redis, redis_url: str
) -> None:
    """The bot's total and models, then every server (most GPU time first; 0 is outside any server), then the command
    line's own jobs: one row each, seconds to the millisecond, money in millionths."""
    await junes_jobs(redis)
    result = await runpod_bot(workdir, "usage", "--month", "2025-06", REDIS_URL=redis_url)
    assert result.returncode == 0, result.stderr
    assert table(result.stdout) == [
        ["MONTH", "SCOPE", "ID", "JOBS", "GPU_S", "QUEUE_S", "COST"],
        ["2025-06", "total", "all", "4", "12.000", "2.000", "0.002000 USD"],
        ["2025-06", "model", "flux", "1", "6.000", "0.500", "-"],
        ["2025-06", "model", "sdxl", "3", "6.000", "1.500", "0.002000 USD"],
        ["2025-06", "server", "100", "2", "10.000", "1.000", "0.002000 USD"],
        ["2025-06", "server", "200", "1", "1.500", "0.500", "-"],
        ["2025-06", "server", "0", "1", "0.500", "0.500", "-"],
        ["2025-06", "terminal", "cli", "0", "0.000", "0.000", "-"],
    ]


async def test_one_servers_models_and_members_for_a_month(workdir: Path, redis: aioredis.Redis, redis_url: str) -> None:
    """`--guild` shows that server alone: its sum, its models, its members by GPU time (another server's member and
    the DM job are not in it)."""
    await junes_jobs(redis)
    result = await runpod_bot(workdir, "usage", "--guild", "100", "--month", "2025-06", REDIS_URL=redis_url)
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)[1:]
    assert [row[1:4] for row in rows] == [
        ["server", "100", "2"],
        ["model", "flux", "1"],
        ["model", "sdxl", "1"],
        ["member", "2", "1"],
        ["member", "1", "1"],
    ]


async def test_json_holds_the_same_sums(workdir: Path, redis: aioredis.Redis, redis_url: str) -> None:
    """`--json` gives the month (UTC), the totals per model and each server's sums, for a script."""
    await junes_jobs(redis)
    result = await runpod_bot(workdir, "usage", "--month", "2025-06", "--json", REDIS_URL=redis_url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["month"], report["timezone"]) == ("2025-06", "UTC")
    assert report["total"]["gpu_ms"] == 12_000
    assert report["total"]["models"]["sdxl"]["cost_micros"] == {"USD": 2000}
    assert [(server["guild_id"], server["jobs"]) for server in report["servers"]] == [(100, 2), (200, 1), (0, 1)]
    assert report["terminal"]["jobs"] == 0


async def test_a_month_not_written_yyyy_mm_is_refused(workdir: Path, redis_url: str) -> None:
    """`--month 2025-13` exits 2, saying how a month is written."""
    result = await runpod_bot(workdir, "usage", "--month", "2025-13", REDIS_URL=redis_url)
    assert result.returncode == 2
    assert "YYYY-MM" in result.stderr


async def test_the_command_lines_own_jobs_are_counted_apart(
    workdir: Path, emulator: Emulator, redis: aioredis.Redis, redis_url: str
) -> None:
    """A job `runpod-bot imagine` ran is in this month's `terminal` row with the GPU time RunPod reported."""
    env = emulator_env(emulator, REDIS_URL=redis_url, POLL_FIRST_MS="100")
    made = await runpod_bot(workdir, "imagine", "a lighthouse", "--out", "out", **env)
    assert made.returncode == 0, made.stderr
    (runpod_id,) = emulator.counters.terminal
    view = emulator.job(runpod_id)
    assert view is not None
    result = await runpod_bot(workdir, "usage", REDIS_URL=redis_url)
    assert result.returncode == 0, result.stderr
    (terminal,) = [row for row in table(result.stdout) if row[1] == "terminal"]
    assert terminal[3:5] == ["1", f"{view['executionTime'] / 1000:.3f}"]
