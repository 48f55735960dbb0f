"""GPU time through the real poller and the emulator: what RunPod reports when a job ends is added up once, whatever
the outcome, and a job that never started adds nothing; the metrics count it by model."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from jobs.access import Actor
from jobs.metrics import Metrics
from jobs.poller import Poller
from jobs.presets import ModelCatalog, RequestOptions
from jobs.prices import Price
from jobs.usage import OTHER_MODEL, UsageRefusedError
from storage.models import JobState, Requester
from storage.usage import Sums
from tests.integration.jobs.conftest import FAST_POLICY, FAST_POLLER, LOOPBACK_FETCH, Core, RecordingNotifier, polling
from tests.waiting import wait_until

MEMBER = Requester(user_id=41, guild_id=4, channel_id=5)
ME = Actor(user_id=MEMBER.user_id, guild_id=MEMBER.guild_id)
# 0.0005 a GPU-second (1.80 an hour).
PRICE = Price(Decimal("0.0005"), "USD")


def priced(catalog: ModelCatalog, price: Price | None = PRICE, name: str | None = None) -> ModelCatalog:
    model = replace(catalog.default, price=price, name=name or catalog.default.name)
    return ModelCatalog((model,), model.name)


def poller(core: Core, notifier: RecordingNotifier, metrics: Metrics, catalog: ModelCatalog | None = None) -> Poller:
    """The poller as the composition root builds it: with the models' catalog and the process's metrics."""
    return Poller(
        core.store,
        core.clients,
        notifier,
        http=core.http,
        fetch_policy=LOOPBACK_FETCH,
        policy=FAST_POLICY,
        settings=FAST_POLLER,
        catalog=catalog or priced(core.catalog),
        metrics=metrics,
    )


async def submit(core: Core) -> str:
    submission = await core.service.submit(RequestOptions(prompt="a lighthouse"), MEMBER)
    return submission.job.jid


async def runpod_view(core: Core, jid: str) -> dict[str, Any]:
    """The job as RunPod (the emulator) reports it."""
    job = await core.store.get(jid)
    assert job is not None
    assert job.runpod_id is not None
    view = core.emulator.job(job.runpod_id)
    assert view is not None
    return view


async def finished(core: Core, notifier: RecordingNotifier, jid: str, metrics: Metrics | None = None) -> JobState:
    async with polling(poller(core, notifier, metrics or Metrics())):
        await wait_until(lambda: jid in notifier.finished)
    return notifier.outcome(jid)


async def month_of_member(core: Core) -> Sums:
    return (await core.service.usage.member(ME)).everywhere.month.total


async def test_a_completed_job_adds_the_gpu_and_queue_time_runpod_reported(core: Core) -> None:
    """The member's sums hold exactly RunPod's executionTime and delayTime for the job, and its cost at the price."""
    core.emulator.update_scenario(execution_s=0.3)
    jid = await submit(core)
    assert await finished(core, RecordingNotifier(), jid) is JobState.COMPLETED
    view = await runpod_view(core, jid)
    expected = Sums(
        jobs=1,
        gpu_ms=view["executionTime"],
        queue_ms=view["delayTime"],
        costs={"USD": PRICE.cost_micros(view["executionTime"])},
    )
    usage = await core.service.usage.member(ME)
    assert usage.everywhere.today.total == expected
    assert usage.everywhere.month.total == expected
    assert usage.here is not None
    assert usage.here.month.total == expected
    assert view["executionTime"] >= 300


async def test_a_job_cancelled_while_running_adds_the_time_it_ran(core: Core) -> None:
    """A worker started it, the member cancelled it: RunPod bills the time it ran, and so does the sum."""
    core.emulator.update_scenario(execution_s=5.0)
    jid = await submit(core)
    notifier = RecordingNotifier()
    async with polling(poller(core, notifier, Metrics())):
        await wait_until(lambda: any(job.jid == jid and job.state is JobState.RUNNING for job in notifier.updates))
        await core.service.cancel(jid, ME)
        await wait_until(lambda: jid in notifier.finished)
    assert notifier.outcome(jid) is JobState.CANCELLED
    view = await runpod_view(core, jid)
    assert view["status"] == "CANCELLED"
    assert 0 < view["executionTime"] < 5000
    assert await month_of_member(core) == Sums(
        jobs=1,
        gpu_ms=view["executionTime"],
        queue_ms=view["delayTime"],
        costs={"USD": PRICE.cost_micros(view["executionTime"])},
    )


async def test_a_job_cancelled_while_queued_adds_nothing(core: Core) -> None:
    """No worker ever started it (RunPod reports no executionTime): it cost nothing and adds nothing."""
    core.emulator.update_scenario(workers=0)
    jid = await submit(core)
    assert (await runpod_view(core, jid))["status"] == "IN_QUEUE"
    await core.service.cancel(jid, ME)
    assert await finished(core, RecordingNotifier(), jid) is JobState.CANCELLED
    assert "executionTime" not in await runpod_view(core, jid)
    assert await month_of_member(core) == Sums()


async def test_a_failed_job_adds_the_time_it_ran(core: Core) -> None:
    """A worker that ran and failed is billed: its time is added like a completed job's."""
    core.emulator.update_scenario(personality="fail-plain", execution_s=0.2)
    jid = await submit(core)
    assert await finished(core, RecordingNotifier(), jid) is JobState.FAILED
    view = await runpod_view(core, jid)
    assert (await month_of_member(core)).gpu_ms == view["executionTime"] > 0


async def test_gpu_and_queue_seconds_are_exported_by_model(core: Core) -> None:
    """The process's counters gain the job's seconds under its model's name."""
    metrics = Metrics()
    jid = await submit(core)
    await finished(core, RecordingNotifier(), jid, metrics)
    view = await runpod_view(core, jid)
    labels = {"model": core.catalog.default.name}
    assert metrics.registry.get_sample_value("runpod_bot_gpu_seconds_total", labels) == view["executionTime"] / 1000
    assert metrics.registry.get_sample_value("runpod_bot_queue_seconds_total", labels) == view["delayTime"] / 1000


async def test_a_model_no_longer_configured_is_exported_as_other(core: Core) -> None:
    """A job of a model models.toml no longer lists is counted under `other`, so the labels stay bounded."""
    metrics = Metrics()
    jid = await submit(core)
    notifier = RecordingNotifier()
    async with polling(poller(core, notifier, metrics, priced(core.catalog, name="renamed"))):
        await wait_until(lambda: jid in notifier.finished)
    gpu = metrics.registry.get_sample_value("runpod_bot_gpu_seconds_total", {"model": OTHER_MODEL})
    assert gpu is not None
    assert gpu > 0
    assert metrics.registry.get_sample_value("runpod_bot_gpu_seconds_total", {"model": "renamed"}) is None


async def test_a_model_without_a_price_adds_seconds_and_no_money(core: Core) -> None:
    """An unpriced model's job adds its GPU time; no currency appears."""
    jid = await submit(core)
    notifier = RecordingNotifier()
    async with polling(poller(core, notifier, Metrics(), priced(core.catalog, price=None))):
        await wait_until(lambda: jid in notifier.finished)
    month = await month_of_member(core)
    assert month.gpu_ms > 0
    assert month.costs == {}


@pytest.mark.parametrize(
    ("actor", "refusal"),
    [
        (Actor(user_id=1, guild_id=4), "Only this server's moderators"),
        (Actor(user_id=1, guild_id=None, moderator=True), "in that server"),
    ],
)
async def test_a_servers_usage_is_for_its_moderators(core: Core, actor: Actor, refusal: str) -> None:
    """A member, or anyone in a DM, is refused a server's usage, with who may see it and what they may see."""
    with pytest.raises(UsageRefusedError, match=refusal):
        await core.service.usage.server(actor)


async def test_every_servers_usage_is_for_the_operator(core: Core) -> None:
    """A moderator is refused the usage of every server; the operator gets it, month by month."""
    with pytest.raises(UsageRefusedError, match="operator"):
        await core.service.usage.everything(Actor(user_id=1, guild_id=4, moderator=True))
    everything = await core.service.usage.everything(Actor(user_id=1, operator=True), month="2025-06")
    assert (everything.month, everything.servers) == ("2025-06", [])
