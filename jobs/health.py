"""The facts behind `/health`, `runpod-bot health` and `runpod-bot check`, gathered once for every front end: each
model's endpoint health from RunPod, and the tracker's own state in Redis. The front ends only word them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobs.presets import ModelConfig
from jobs.text import N_, stored
from jobs.waiting import HEALTH_UNKNOWN_LOCAL
from runpod_client import RunPodClient
from runpod_client.errors import AuthenticationError, NotFoundError, NotSupportedError, RunPodError
from runpod_client.models import Health
from storage.store import EndpointError, JobStore

# The templates of this module's texts for members (`jobs.text.stored`), registered when the module is
# imported, so any process recognises them in a kept text and translates them.
RUNPOD_DOES_NOT_KNOW_ENDPOINT = stored("RunPod does not know endpoint {endpoint_id} (404)")
RUNPOD_COULD_NOT_BE_ASKED = stored("RunPod could not be asked: {exc}")

__all__ = ["EndpointError", "EndpointTracking", "ModelHealth", "Tracking", "model_health", "models_health", "tracking"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelHealth:
    """One model's endpoint as RunPod's `/health` describes it; `error` says, in words, why RunPod did not answer."""

    model: str
    endpoint_id: str
    health: Health | None
    error: str | None
    # Why there is no health although nothing failed (a server without /health).
    unknown: str | None = None


async def model_health(model: str, client: RunPodClient) -> ModelHealth:
    """/health of one model's endpoint, with RunPod's refusals in words."""
    try:
        return ModelHealth(model, client.endpoint_id, await client.health(), None)
    except NotSupportedError:
        return ModelHealth(model, client.endpoint_id, None, None, HEALTH_UNKNOWN_LOCAL)
    except AuthenticationError:
        return ModelHealth(model, client.endpoint_id, None, N_("RunPod rejected RUNPOD_API_KEY (401 Unauthorized)"))
    except NotFoundError:
        return ModelHealth(
            model,
            client.endpoint_id,
            None,
            RUNPOD_DOES_NOT_KNOW_ENDPOINT.format(endpoint_id=client.endpoint_id),
        )
    except RunPodError as exc:
        return ModelHealth(model, client.endpoint_id, None, RUNPOD_COULD_NOT_BE_ASKED.format(exc=exc))


async def models_health(models: Sequence[ModelConfig], clients: Mapping[str, RunPodClient]) -> list[ModelHealth]:
    """Each model's endpoint health, asked at once, in the order of `models`."""
    return list(await asyncio.gather(*(model_health(model.name, clients[model.endpoint_id]) for model in models)))


@dataclass(frozen=True)
class EndpointTracking:
    """One endpoint as the tracker sees it: the jobs scheduled on it, how late its most overdue one is, and the last
    error RunPod gave for it."""

    active_jobs: int
    due_lag_ms: int
    last_error: EndpointError | None


@dataclass(frozen=True)
class Tracking:
    """The tracker's own state: whether Redis answers, the unfinished jobs per state and delivered jobs per outcome
    (`states`, as `JobStore.counts` names them), and each endpoint's schedule."""

    redis_ok: bool
    states: Mapping[str, int]
    endpoints: Mapping[str, EndpointTracking]

    @property
    def due_lag_ms(self) -> int:
        """How late the most overdue job of any endpoint is."""
        return max((endpoint.due_lag_ms for endpoint in self.endpoints.values()), default=0)


async def tracking(store: JobStore, endpoint_ids: Sequence[str] | None = None) -> Tracking:
    """The tracker's state in `store`, for `endpoint_ids` (default: every endpoint it has a schedule for)."""
    try:
        await store.redis.ping()
    except Exception:
        # Whatever the reason, the operator reads that Redis is unreachable, not an error.
        log.warning("health: Redis did not answer", exc_info=True)
        return Tracking(redis_ok=False, states={}, endpoints={})
    if endpoint_ids is None:
        endpoint_ids = await store.endpoint_ids()
    endpoints = {
        endpoint_id: EndpointTracking(
            active_jobs=await store.scheduled_count(endpoint_id),
            due_lag_ms=await store.due_lag_ms(endpoint_id),
            last_error=await store.endpoint_error(endpoint_id),
        )
        for endpoint_id in endpoint_ids
    }
    return Tracking(redis_ok=True, states=await store.counts(), endpoints=endpoints)
