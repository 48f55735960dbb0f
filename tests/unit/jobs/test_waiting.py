"""Honest waiting: each worker situation RunPod reports gets its own explanation."""

from __future__ import annotations

import pytest

from jobs.waiting import explain_wait
from runpod_client.models import Health


@pytest.mark.parametrize(
    ("workers", "jobs", "expected"),
    [
        ({"unhealthy": 2}, {}, "workers are unhealthy"),
        ({"throttled": 3}, {}, "throttled: RunPod has no free GPU"),
        ({"initializing": 1}, {}, "waiting for a GPU (workers are starting)"),
        ({}, {}, "no workers available yet"),
        ({"running": 4}, {"inQueue": 6}, "all 4 workers are busy; 5 jobs ahead"),
        ({"idle": 1}, {}, "waiting for a worker"),
    ],
)
def test_each_worker_situation_has_its_reason(workers: dict[str, int], jobs: dict[str, int], expected: str) -> None:
    """The reason names what is really happening at the endpoint."""
    health = Health.model_validate({"workers": workers, "jobs": jobs})
    assert expected in explain_wait(health)


def test_unknown_health_gives_a_neutral_reason() -> None:
    """When RunPod could not be asked, the card does not guess."""
    assert explain_wait(None) == "waiting for a worker"
