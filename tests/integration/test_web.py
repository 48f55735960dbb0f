"""The bot's HTTP app receiving the emulator's webhooks over real HTTP: results arrive without polling, once."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import aiohttp
import pytest
import redis.asyncio as aioredis

from jobs.poller import Poller
from jobs.presets import RequestOptions, default_catalog
from jobs.service import JobService
from jobs.webhooks import WebhookReceiver, WebhookSigner
from runpod_bot.core import CoreOptions, assemble_core
from runpod_bot.web import create_app, serve
from runpod_client import RunPodClient
from runpod_emulator import Emulator, Scenario
from storage.models import JobState, Requester
from storage.store import JobStore, StoreConfig
from tests.integration.jobs.conftest import FAST_POLICY, FAST_POLLER, LOOPBACK_FETCH, RecordingNotifier, polling
from tests.plugins.emulator import client_for, fast_scenario
from tests.waiting import wait_until

SECRET = b"a test webhook secret"
# Polling only as a safety net that never comes during a test: whatever finishes a job came by webhook.
WEBHOOK_POLICY = replace(FAST_POLICY, webhooks=True, webhook_first_poll_ms=60_000, webhook_poll_ms=60_000)
MEMBER = Requester(user_id=1, guild_id=2)


@pytest.fixture
def emulator_scenario() -> Scenario:
    """Plenty of quick workers; webhooks retried quickly."""
    return fast_scenario(workers=50, strict_limits=False)


@dataclass
class Hooked:
    """A store, the app serving webhooks on a free port, and helpers to submit jobs and finish them."""

    store: JobStore
    client: RunPodClient
    http: aiohttp.ClientSession
    emulator: Emulator
    address: str
    receiver: WebhookReceiver

    def poller(self, notifier: RecordingNotifier, *, finisher: bool = True, webhooks: bool = True) -> Poller:
        """A poller; with `finisher`, the app hands it the jobs whose webhook arrives (one process)."""
        poller = Poller(
            self.store,
            {self.client.endpoint_id: self.client},
            notifier,
            http=self.http,
            fetch_policy=LOOPBACK_FETCH,
            policy=WEBHOOK_POLICY if webhooks else FAST_POLICY,
            settings=FAST_POLLER,
        )
        if finisher:
            self.receiver.finisher = poller
        return poller

    async def submit(self, prompt: str, *, webhooks: bool = True) -> str:
        service = JobService(
            self.store,
            {self.client.endpoint_id: self.client},
            default_catalog(self.emulator.endpoint_id),
            policy=WEBHOOK_POLICY if webhooks else FAST_POLICY,
            webhook_for=WebhookSigner(SECRET, self.address).url_for,
        )
        return (await service.submit(RequestOptions(prompt=prompt), MEMBER)).job.jid

    async def post(self, url: str, body: object) -> int:
        async with self.http.post(url, json=body) as response:
            return response.status

    async def post_raw(self, url: str, data: bytes, content_type: str) -> tuple[int, str]:
        """POST raw bytes with a Content-Type; the status and the reply's text."""
        async with self.http.post(url, data=data, headers={"Content-Type": content_type}) as response:
            return response.status, await response.text()


@pytest.fixture
async def hooked(redis: aioredis.Redis, emulator: Emulator) -> AsyncIterator[Hooked]:
    """The webhook app served on a free loopback port, in front of a store on the test Redis."""
    async with aiohttp.ClientSession() as http:
        store = JobStore(redis, StoreConfig(submit_lease_ms=400))
        receiver = WebhookReceiver(store, WebhookSigner(SECRET, "http://127.0.0.1"))
        async with serve(create_app(webhooks=receiver), port=0) as address:
            yield Hooked(store, client_for(emulator, http), http, emulator, address, receiver)


async def test_finished_job_arrives_by_webhook_without_any_status_poll(hooked: Hooked) -> None:
    """With webhooks, a finished job reaches the notifier with its images and RunPod's /status is never asked."""
    notifier = RecordingNotifier()
    jid = await hooked.submit("a castle by webhook")
    async with polling(hooked.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
    (result,) = notifier.finished[jid]
    assert result.outcome is JobState.COMPLETED
    assert result.images[0].data.startswith(b"\x89PNG")
    assert hooked.emulator.counters.request_count("status") == 0
    job = await hooked.store.get(jid)
    assert job is not None
    assert job.state is JobState.DELIVERED


async def test_bad_token_is_refused_with_401_and_logged(hooked: Hooked, caplog: pytest.LogCaptureFixture) -> None:
    """A webhook whose token is wrong changes nothing, is answered 401, and leaves a log line."""
    jid = await hooked.submit("a forged result")
    url = WebhookSigner(b"another secret", hooked.address).url(hooked.emulator.endpoint_id, jid)
    with caplog.at_level(logging.WARNING, logger="runpod_bot.web"):
        status = await hooked.post(url, {"id": "x", "status": "COMPLETED", "output": {"images": []}})
    assert status == 401
    assert any("bad token" in record.getMessage() and jid in record.getMessage() for record in caplog.records)
    job = await hooked.store.get(jid)
    assert job is not None
    assert job.state is JobState.QUEUED


async def test_body_that_is_not_a_job_is_refused_with_400(hooked: Hooked) -> None:
    """A correctly signed request whose body is not a RunPod job object is refused and changes nothing."""
    jid = await hooked.submit("a garbled result")
    url = WebhookSigner(SECRET, hooked.address).url(hooked.emulator.endpoint_id, jid)
    assert await hooked.post(url, {"unexpected": True}) == 400
    job = await hooked.store.get(jid)
    assert job is not None
    assert job.state is JobState.QUEUED


@pytest.mark.parametrize("depth", [100, 100_000])
async def test_deeply_nested_body_is_refused_with_400(hooked: Hooked, depth: int) -> None:
    """A correctly signed body nested far deeper than any job object is answered 400 with a reason, not a crash."""
    jid = await hooked.submit("a nested result")
    url = WebhookSigner(SECRET, hooked.address).url(hooked.emulator.endpoint_id, jid)
    body = b'{"id": "x", "status": "COMPLETED", "output": ' + b"[" * depth + b"]" * depth + b"}"
    status, reply = await hooked.post_raw(url, body, "application/json")
    assert status == 400
    assert "nested deeper than" in json.loads(reply)["error"]
    job = await hooked.store.get(jid)
    assert job is not None
    assert job.state is JobState.QUEUED


async def test_body_that_is_not_json_is_refused_with_415(hooked: Hooked) -> None:
    """A correctly signed request whose Content-Type is not application/json is answered 415 and changes nothing."""
    jid = await hooked.submit("a plain-text result")
    url = WebhookSigner(SECRET, hooked.address).url(hooked.emulator.endpoint_id, jid)
    status, reply = await hooked.post_raw(url, b'{"id": "x", "status": "COMPLETED"}', "text/plain")
    assert status == 415
    assert "application/json" in json.loads(reply)["error"]
    job = await hooked.store.get(jid)
    assert job is not None
    assert job.state is JobState.QUEUED


async def test_webhook_in_a_process_without_a_poller_makes_the_job_due(hooked: Hooked) -> None:
    """A webhook received where no poller runs makes the job due at once: another process polls it once."""
    notifier = RecordingNotifier()
    jid = await hooked.submit("a castle elsewhere")
    async with polling(hooked.poller(notifier, finisher=False)):
        await wait_until(lambda: jid in notifier.finished)
    assert notifier.outcome(jid) is JobState.COMPLETED
    assert hooked.emulator.counters.request_count("status") == 1


async def test_repeated_webhook_delivers_once(hooked: Hooked) -> None:
    """RunPod calling the webhook again (a retry) after the job was delivered posts nothing more."""
    notifier = RecordingNotifier()
    jid = await hooked.submit("a castle twice")
    async with polling(hooked.poller(notifier)):
        await wait_until(lambda: jid in notifier.finished)
        job = await hooked.store.get(jid)
        assert job is not None
        assert job.runpod_id is not None
        view = hooked.emulator.job(job.runpod_id)
        url = WebhookSigner(SECRET, hooked.address).url(job.endpoint_id, jid)
        assert await hooked.post(url, view) == 200
        await asyncio.sleep(0.2)
    assert len(notifier.finished[jid]) == 1


async def test_webhooks_racing_polls_deliver_each_job_once(hooked: Hooked) -> None:
    """Jobs polled often while their webhooks arrive too are each delivered exactly once, with their images."""
    notifier = RecordingNotifier()
    jids = [await hooked.submit(f"a race {index}", webhooks=False) for index in range(40)]
    async with polling(hooked.poller(notifier, webhooks=False)):
        await wait_until(lambda: len(notifier.finished) == len(jids))
        await asyncio.sleep(0.3)
    calls = Counter({jid: len(results) for jid, results in notifier.finished.items()})
    assert set(calls) == set(jids)
    assert set(calls.values()) == {1}
    assert {notifier.outcome(jid) for jid in jids} == {JobState.COMPLETED}


async def test_core_assembled_for_webhooks_delivers_through_the_app_on_its_bound_socket(
    redis: aioredis.Redis, emulator: Emulator
) -> None:
    """A core whose webhook URLs name a socket bound before the app existed gets its jobs back by webhook, unpolled."""
    notifier = RecordingNotifier()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        signer = WebhookSigner(SECRET, f"http://127.0.0.1:{listener.getsockname()[1]}")
        options = CoreOptions(
            api_key=emulator.api_key,
            runpod_base_url=emulator.base_url,
            policy=WEBHOOK_POLICY,
            poller_settings=FAST_POLLER,
            fetch_policy=LOOPBACK_FETCH,
            webhook_signer=signer,
        )
        async with aiohttp.ClientSession() as http:
            core = assemble_core(redis, http, default_catalog(emulator.endpoint_id), options)
            poller = core.poller(notifier)
            async with serve(create_app(webhooks=core.webhook_receiver(poller)), sock=listener), polling(poller):
                submission = await core.service.submit(RequestOptions(prompt="a bound castle"), MEMBER)
                await wait_until(lambda: submission.job.jid in notifier.finished)
    (result,) = notifier.finished[submission.job.jid]
    assert (result.outcome, emulator.counters.request_count("status")) == (JobState.COMPLETED, 0)
