"""Honest waiting: why a queued job is waiting, in words, from the endpoint's /health."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from jobs.text import N_, plural_of, stored_n
from runpod_client import RunPodClient
from runpod_client.errors import NotSupportedError, RunPodError
from runpod_client.models import Health

# The templates of this module's texts for members (`jobs.text.stored`), registered when the module is
# imported, so any process recognises them in a kept text and translates them.
ALL_WORKERS_ARE_BUSY_JOB = stored_n(
    "all {running} workers are busy; {n} job ahead in the queue",
    "all {running} workers are busy; {n} jobs ahead in the queue",
)

log = logging.getLogger(__name__)

DEFAULT_HEALTH_TTL_S = 10.0
# What /health shows (on Discord and the command line) for a model on RunPod's local worker server.
HEALTH_UNKNOWN_LOCAL = N_("unknown (local worker server has no /health)")


def explain_wait(health: Health | None) -> str:
    """The reason a queued job is waiting, as a member should read it."""
    if health is None:
        return N_("waiting for a worker")
    workers, jobs = health.workers, health.jobs
    usable = workers.idle + workers.ready + workers.running
    if workers.unhealthy and not usable:
        return N_("workers are unhealthy (they keep crashing); a moderator should check the endpoint")
    if workers.throttled and not usable and not workers.initializing:
        return N_("throttled: RunPod has no free GPU of this type right now")
    if workers.initializing and not (workers.idle + workers.ready):
        return N_("waiting for a GPU (workers are starting)")
    if not (usable + workers.initializing + workers.throttled):
        return N_("no workers available yet (the endpoint is scaling up from zero)")
    if workers.running and not (workers.idle + workers.ready):
        ahead = max(0, jobs.in_queue - 1)
        return plural_of(ALL_WORKERS_ARE_BUSY_JOB, ahead, running=workers.running)
    return N_("waiting for a worker")


@dataclass
class _Entry:
    health: Health | None
    at: float


class HealthCache:
    """Each endpoint's /health, asked at most once per `ttl_s` however many jobs or members want it."""

    def __init__(self, clients: Mapping[str, RunPodClient], ttl_s: float = DEFAULT_HEALTH_TTL_S) -> None:
        self.clients = clients
        self.ttl_s = ttl_s
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, endpoint_id: str) -> Health | None:
        """The endpoint's recent health, or None when RunPod could not say."""
        entry = self._entries.get(endpoint_id)
        if entry is not None and time.monotonic() - entry.at < self.ttl_s:
            return entry.health
        async with self._locks.setdefault(endpoint_id, asyncio.Lock()):
            entry = self._entries.get(endpoint_id)
            if entry is not None and time.monotonic() - entry.at < self.ttl_s:
                return entry.health
            health = await self._fetch(endpoint_id)
            self._entries[endpoint_id] = _Entry(health, time.monotonic())
            return health

    def peek(self, endpoint_id: str) -> Health | None:
        """The endpoint's recent health if it is already known, without asking RunPod (None otherwise)."""
        entry = self._entries.get(endpoint_id)
        if entry is not None and time.monotonic() - entry.at < self.ttl_s:
            return entry.health
        return None

    async def _fetch(self, endpoint_id: str) -> Health | None:
        client = self.clients.get(endpoint_id)
        if client is None:
            return None
        try:
            return await client.health()
        except NotSupportedError:
            return None  # RunPod's local worker server: nothing to explain, nothing to warn about
        except RunPodError as exc:
            log.warning("health of endpoint %s unavailable: %s", endpoint_id, exc)
            return None
