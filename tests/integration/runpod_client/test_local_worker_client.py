"""`LocalWorkerClient` against RunPod's real local worker server: what it does where the server differs from RunPod."""

from __future__ import annotations

import aiohttp
import pytest

from runpod_client import JobStatus, LocalWorkerClient, NotSupportedError, ResultLostError


async def test_status_runs_the_job_once_and_a_second_status_says_the_result_is_lost(
    local_workers: dict[str, str],
) -> None:
    """The first status returns the finished job; the next raises ResultLostError, which says why."""
    async with aiohttp.ClientSession() as http:
        client = LocalWorkerClient(http, local_workers["sdxl"])
        queued = await client.run({"prompt": "a fox", "seed": 3, "num_images": 1})
        assert queued.id.startswith("test-")
        finished = await client.status(queued.id)
        assert finished.status is JobStatus.COMPLETED
        assert finished.output["seed"] == 3
        with pytest.raises(ResultLostError, match="gives a job's result only once"):
            await client.status(queued.id)


async def test_run_sync_returns_the_finished_job(local_workers: dict[str, str]) -> None:
    """/runsync runs the job to its end and returns its output."""
    async with aiohttp.ClientSession() as http:
        job = await LocalWorkerClient(http, local_workers["sdxl"]).run_sync(
            {"prompt": "a fox", "seed": 4, "num_images": 2}
        )
    assert job.status is JobStatus.COMPLETED
    assert len(job.output["images"]) == 2


@pytest.mark.parametrize("operation", ["cancel", "health", "purge_queue", "retry"])
async def test_operations_the_server_lacks_raise_not_supported(operation: str) -> None:
    """cancel, health, purge_queue and retry raise NotSupportedError naming the server, without sending anything."""
    async with aiohttp.ClientSession() as http:
        # Nothing listens there: an attempt to send would fail differently.
        client = LocalWorkerClient(http, "http://127.0.0.1:1")
        call = getattr(client, operation)
        with pytest.raises(
            NotSupportedError, match=f"RunPod's local worker server has no /{operation.replace('_', '-')}"
        ):
            await (call("test-1") if operation in ("cancel", "retry") else call())
