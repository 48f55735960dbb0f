"""Scaling out with real processes: one gateway and several pollers on one Redis, against the standalone fake
Discord and the emulator. Every job is delivered once; a killed poller's jobs go to the other; a poller stopped
with SIGTERM hands its jobs over within a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from runpod_emulator import Emulator, Scenario
from tests.chaos.processes import BotLauncher, BotProcess
from tests.e2e.bot.conftest import job_in
from tests.fakes.discord import FakeDiscordControl
from tests.fakes.discord.views import MessageView
from tests.plugins.emulator import fast_scenario
from tests.waiting import wait_until


@dataclass
class Cluster:
    control: FakeDiscordControl
    emulator: Emulator
    redis: aioredis.Redis
    launcher: BotLauncher
    channel_id: int
    members: list[int]
    processes: list[BotProcess]

    async def start(self, role: str) -> BotProcess:
        process = await self.launcher.launch(role)
        self.processes.append(process)
        return process

    async def submit(self, count: int, prefix: str) -> None:
        for index in range(count):
            member = self.members[index % len(self.members)]
            await self.control.invoke_command(self.channel_id, member, "imagine", {"prompt": f"{prefix} {index}"})

    async def results_by_job(self) -> dict[str, int]:
        """How many result messages each job has (a result names its job in its buttons' custom_ids)."""
        counts: dict[str, int] = {}
        for message in await self.control.channel_messages(self.channel_id):
            jid = job_in(message) if message["attachments"] else None
            if jid is not None:
                counts[jid] = counts.get(jid, 0) + 1
        return counts

    async def cards(self) -> list[MessageView]:
        return [m for m in await self.control.channel_messages(self.channel_id) if m["embeds"] and not m["attachments"]]


@pytest.fixture
def emulator_scenario() -> Scenario:
    return fast_scenario(workers=20, execution_s=(1.0, 2.0), strict_limits=False)


@pytest.fixture
async def cluster(
    fake_discord_control: FakeDiscordControl,
    emulator: Emulator,
    redis: aioredis.Redis,
    redis_url: str,
    tmp_path: Path,
) -> AsyncIterator[Cluster]:
    info = await fake_discord_control.info()
    guild = await fake_discord_control.create_guild("Scale")
    channel = await fake_discord_control.create_channel(guild["id"], "general")
    members = [
        (await fake_discord_control.create_member(guild["id"], name))["user_id"] for name in ("ann", "ben", "cy")
    ]
    env = {
        "DISCORD_TOKEN": info["bot_token"],
        "DISCORD_API_BASE_URL": info["api_base_url"],
        "DISCORD_GATEWAY_URL": info["gateway_url"],
        "RUNPOD_API_KEY": emulator.api_key,
        "RUNPOD_ENDPOINT_ID": emulator.endpoint_id,
        "RUNPOD_BASE_URL": emulator.base_url,
        "REDIS_URL": redis_url,
        "HTTP_PORT": "0",
        "USER_COOLDOWN_S": "0",
        "USER_ACTIVE_JOBS": "50",
        "GUILD_ACTIVE_JOBS": "500",
        "ALLOW_PRIVATE_IMAGE_URLS": "true",
        "MODELS_FILE": str(tmp_path / "no-models.toml"),
        "POLL_FIRST_MS": "200",
        "POLL_QUEUED_MIN_MS": "200",
        "POLL_QUEUED_MAX_MS": "500",
        "POLL_RUNNING_MIN_MS": "200",
        "POLL_RUNNING_MAX_MS": "500",
        "POLL_LEASE_MS": "3000",
        "DELIVERY_LEASE_MS": "3000",
        "CARD_EDIT_INTERVAL_S": "1",
        # Twelve results into one channel at once: the test is about crashes, not the bot's Discord pacing.
        "DISCORD_CHANNEL_REQUESTS": "100",
        "DISCORD_CHANNEL_WINDOW_S": "1",
    }
    launcher = BotLauncher(env=env, log_dir=tmp_path, work_dir=tmp_path)
    running = Cluster(fake_discord_control, emulator, redis, launcher, channel["id"], members, [])
    try:
        yield running
    finally:
        await asyncio.gather(*(process.stop() for process in running.processes))


async def gateway_ready(cluster: Cluster) -> None:
    await cluster.start("gateway")

    async def commands_synced() -> bool:
        return bool(await cluster.control.commands()) and bool(await cluster.control.sessions())

    await wait_until(commands_synced, timeout_s=30)


async def test_gateway_and_two_pollers_deliver_each_job_once_even_when_one_is_killed(cluster: Cluster) -> None:
    """Twelve jobs, one poller SIGKILLed mid-run: every job gets exactly one result."""
    await gateway_ready(cluster)
    first = await cluster.start("poller")
    await cluster.start("poller")
    await cluster.submit(12, "shared")
    await wait_until(lambda: cluster.emulator.counters.request_count("run") >= 12, timeout_s=30)
    await first.kill()

    async def all_delivered() -> bool:
        return len(await cluster.results_by_job()) >= 12

    await wait_until(all_delivered, timeout_s=60)
    counts = await cluster.results_by_job()
    assert len(counts) == 12
    assert set(counts.values()) == {1}
    assert cluster.emulator.counters.request_count("run") == 12


@pytest.mark.serial
async def test_sigterm_hands_a_pollers_jobs_to_another_within_a_second(cluster: Cluster) -> None:
    """Jobs a poller is in the middle of when it gets SIGTERM are polled by the other poller within a second of
    its exit, not after their 30-second lease."""
    cluster.launcher.env = {**cluster.launcher.env, "POLL_LEASE_MS": "30000"}
    cluster.emulator.update_scenario(execution_s=30.0, slow_reply_s=20.0)
    await gateway_ready(cluster)
    # The leaving poller's first six /status calls hang, so it holds all six jobs when it is stopped.
    cluster.emulator.script_faults("status", *["slow"] * 6)
    leaving = await cluster.start("poller")
    await cluster.submit(6, "handover")
    await wait_until(lambda: cluster.emulator.counters.request_count("status") >= 6, timeout_s=30)
    staying = await cluster.start("poller")
    await wait_until(lambda: "starting in role poller" in staying.log_path.read_text(), timeout_s=30)
    answered_before = cluster.emulator.counters.request_count("status", 200)
    assert await leaving.stop() == 0
    exited = time.monotonic()
    await wait_until(
        lambda: cluster.emulator.counters.request_count("status", 200) >= answered_before + 6, timeout_s=10
    )
    assert time.monotonic() - exited < 1.0
