"""The emulator's own behaviour over raw HTTP: auth, the worker pool, seeded randomness, limits, control API, CLI."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from runpod_client import JobStatus, RunPodClient
from runpod_emulator import Emulator, FaultRates, RateLimit, run_emulator
from tests.plugins.emulator import client_for, emulator_config, fast_scenario, poll_job

PROMPT = {"prompt": "an owl reading a map"}
RUNPOD_BOT = Path(sys.executable).parent / "runpod-bot"


async def call(
    emulator: Emulator,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    *,
    authorization: str | None = "bearer",
    body: Any = None,
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """One raw request to the job API: (status, JSON or text body, headers)."""
    headers = {}
    if authorization == "bearer":
        headers["Authorization"] = f"Bearer {emulator.api_key}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    url = f"{emulator.base_url}/{emulator.endpoint_id}{path}"
    async with session.request(method, url, headers=headers, json=body) as response:
        text = await response.text()
        try:
            parsed: Any = await response.json(content_type=None)
        except ValueError:
            parsed = text
        return response.status, parsed, response.headers


async def control(
    emulator: Emulator, session: aiohttp.ClientSession, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """One request to the control API."""
    async with session.request(method, f"{emulator.url}/_emulator{path}", json=body) as response:
        return response.status, await response.json()


async def test_bare_key_is_accepted_like_bearer(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """`Authorization: <key>` works as well as `Authorization: Bearer <key>`."""
    status, _, _ = await call(emulator, emulator_session, "GET", "/health", authorization=emulator.api_key)
    assert status == 200


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "wrong"])
async def test_missing_or_wrong_key_is_refused_with_a_json_error(
    authorization: str | None, emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """Without the right key every operation answers 401 with {"error": ...}."""
    status, body, _ = await call(emulator, emulator_session, "POST", "/run", authorization=authorization, body={})
    assert status == 401
    assert "error" in body


async def test_one_worker_runs_jobs_first_in_first_out(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """With one worker, jobs finish in the order they were submitted."""
    emulator.update_scenario(workers=1)
    jobs = [await emulator_client.run({**PROMPT, "emulator": {"execution_s": 0.05}}) for _ in range(3)]
    for job in jobs:
        await poll_job(emulator_client, job.id)
    terminal = emulator.snapshot()["terminal"]
    finish_times = [terminal[job.id]["epoch"] for job in jobs]
    assert finish_times == sorted(finish_times)


async def test_a_pool_runs_jobs_side_by_side(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """Three workers finish three 0.3 s jobs together rather than one after another."""
    emulator.update_scenario(workers=3)
    jobs = [await emulator_client.run({**PROMPT, "emulator": {"execution_s": 0.3}}) for _ in range(3)]
    for job in jobs:
        await poll_job(emulator_client, job.id)
    terminal = emulator.snapshot()["terminal"]
    finish_times = [terminal[job.id]["epoch"] for job in jobs]
    assert max(finish_times) - min(finish_times) < 0.2


async def test_cold_start_shows_as_initializing_and_in_delay_time(
    emulator: Emulator, emulator_client: RunPodClient
) -> None:
    """While a worker starts cold, /health says initializing and the job waits; delayTime includes it."""
    emulator.update_scenario(cold_start_s=0.3, workers=1)
    submitted = await emulator_client.run(PROMPT)
    await asyncio.sleep(0.1)
    health = await emulator_client.health()
    queued = await emulator_client.status(submitted.id)
    job, _ = await poll_job(emulator_client, submitted.id)
    assert health.workers.initializing == 1
    assert queued.status == JobStatus.IN_QUEUE
    assert job.delay_time_ms is not None
    assert job.delay_time_ms >= 300


async def test_warm_worker_starts_the_next_job_without_cold_start(
    emulator: Emulator, emulator_client: RunPodClient
) -> None:
    """A worker that just finished takes the next job at once."""
    emulator.update_scenario(cold_start_s=0.3, workers=1)
    await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    second = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    assert second.delay_time_ms is not None
    assert second.delay_time_ms < 200


async def test_worker_goes_cold_after_the_idle_timeout(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """Past idle_timeout a worker is no longer idle, and the next job pays the cold start again."""
    emulator.update_scenario(cold_start_s=0.2, workers=1, idle_timeout_s=0.1)
    await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    await asyncio.sleep(0.15)
    health = await emulator_client.health()
    second = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    assert health.workers.idle == 0
    assert second.delay_time_ms is not None
    assert second.delay_time_ms >= 200


async def health_statuses(seed: int, session: aiohttp.ClientSession, count: int) -> list[int]:
    scenario = fast_scenario(seed=seed, faults={"health": FaultRates(server_error=0.5)})
    async with run_emulator(emulator_config(scenario)) as emulator:
        return [(await call(emulator, session, "GET", "/health"))[0] for _ in range(count)]


async def test_same_seed_gives_the_same_faults(emulator_session: aiohttp.ClientSession) -> None:
    """Two emulators with one seed inject the same faults in the same order; another seed differs."""
    first = await health_statuses(11, emulator_session, 16)
    again = await health_statuses(11, emulator_session, 16)
    other = await health_statuses(12, emulator_session, 16)
    assert first == again
    assert set(first) == {200, 500}
    assert other != first


async def test_same_seed_draws_the_same_image_seeds(emulator_session: aiohttp.ClientSession) -> None:
    """Jobs without a seed get the same drawn seeds from emulators started with the same seed."""
    drawn = []
    for _ in range(2):
        async with run_emulator(emulator_config(fast_scenario(seed=5))) as emulator:
            client = client_for(emulator, emulator_session)
            job = await client.run_sync({"prompt": "no seed given"}, wait_ms=5_000)
            drawn.append(job.output["seed"])
    assert drawn[0] == drawn[1]


async def test_rate_limit_answers_429_with_retry_after(
    emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """Beyond an operation's limit the emulator answers 429, a JSON error and Retry-After."""
    emulator.update_scenario(rate_limits={"health": RateLimit(requests=2, per_s=10)})
    statuses = [(await call(emulator, emulator_session, "GET", "/health")) for _ in range(3)]
    _status, body, headers = statuses[-1]
    assert [item[0] for item in statuses] == [200, 200, 429]
    assert "error" in body
    assert 1 <= int(headers["Retry-After"]) <= 10


async def test_concurrency_limit_answers_429(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """With one concurrent /runsync allowed, a second one at the same time is refused."""
    emulator.update_scenario(rate_limits={"runsync": RateLimit(requests=100, per_s=10, concurrent=1)})
    body = {"input": {**PROMPT, "emulator": {"execution_s": 0.3}}}
    first = asyncio.create_task(call(emulator, emulator_session, "POST", "/runsync?wait=5000", body=body))
    await asyncio.sleep(0.1)
    second_status, _, _ = await call(emulator, emulator_session, "POST", "/runsync?wait=5000", body=body)
    first_status, _, _ = await first
    assert (first_status, second_status) == (200, 429)


async def test_injected_429_has_a_text_body(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """An injected 429 carries a plain-text body, as some of RunPod's do."""
    emulator.script_faults("health", "rate_limited")
    status, body, headers = await call(emulator, emulator_session, "GET", "/health")
    assert status == 429
    assert body == "429 Too Many Requests"
    assert "Retry-After" in headers


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("bad_request", 400, {"error": "bad request"}),
        ("forbidden", 403, {"error": "Forbidden"}),
        ("garbled", 200, "<html><body><h1>Service temporarily unavailable</h1></body></html>"),
    ],
)
async def test_injected_client_faults_answer_as_documented(
    kind: str, status: int, body: Any, emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """`bad_request`, `forbidden` and `garbled` answer 400, 403, or 200 with an HTML page, and are counted."""
    emulator.script_faults("health", kind)
    assert (await call(emulator, emulator_session, "GET", "/health"))[:2] == (status, body)
    label = "garbled" if kind == "garbled" else str(status)
    assert emulator.counters.request_count("health", label) == 1


async def test_prompt_keyword_selects_the_personality(emulator_client: RunPodClient) -> None:
    """`[emulator:fail-plain]` in the prompt makes that job fail with a plain error."""
    job = await emulator_client.run_sync({"prompt": "a cat [emulator:fail-plain]"}, wait_ms=5_000)
    assert job.status == JobStatus.FAILED
    assert job.error_message is not None
    assert "CUDA out of memory" in job.error_message


async def test_keyword_in_a_comfyui_workflow_selects_the_personality(emulator_client: RunPodClient) -> None:
    """The keyword works inside a ComfyUI workflow's text too."""
    workflow = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox [emulator:comfyui]"}}}
    job = await emulator_client.run_sync({"workflow": workflow}, wait_ms=5_000)
    assert job.output["images"][0]["type"] == "base64"


@pytest.mark.parametrize(
    ("personality", "reason"),
    [
        ("fail-json", "width and height must be multiples of 8"),
        ("fail-list", "Prompt outputs failed validation; CheckpointLoaderSimple"),
    ],
)
async def test_failure_personalities_give_a_readable_reason(
    personality: str, reason: str, emulator_client: RunPodClient
) -> None:
    """JSON-encoded and list errors come out as a short reason without the traceback."""
    job = await emulator_client.run_sync({**PROMPT, "emulator": {"personality": personality}}, wait_ms=5_000)
    assert job.status == JobStatus.FAILED
    assert job.error_message is not None
    assert job.error_message.startswith(reason)
    assert "Traceback" not in job.error_message


@pytest.mark.parametrize(("style", "expected"), [("dict", {"step": 1, "steps": 4}), ("percent", "25%")])
async def test_progress_style_is_chosen_per_job(style: str, expected: Any, emulator_client: RunPodClient) -> None:
    """input.emulator.progress picks how the worker reports progress."""
    submitted = await emulator_client.run({**PROMPT, "emulator": {"progress": style}})
    job, _ = await poll_job(emulator_client, submitted.id, until=lambda job: job.output is not None, interval_s=0.005)
    assert job.output == expected


async def test_no_progress_personality_has_no_output_while_running(emulator_client: RunPodClient) -> None:
    """The no-progress worker leaves output empty until the result."""
    submitted = await emulator_client.run({**PROMPT, "emulator": {"personality": "no-progress"}})
    _, seen = await poll_job(emulator_client, submitted.id, interval_s=0.005)
    running = [job for job in seen if job.status == JobStatus.IN_PROGRESS]
    assert running
    assert all(job.output is None for job in running)


async def test_unknown_personality_is_a_bad_request(
    emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """Asking for a personality the emulator lacks is a 400 naming the known ones."""
    body = {"input": {**PROMPT, "emulator": {"personality": "no-such-worker"}}}
    status, reply, _ = await call(emulator, emulator_session, "POST", "/run", body=body)
    assert status == 400
    assert "sdxl" in reply["error"]


async def test_jobs_wait_while_every_worker_is_unhealthy(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """With only unhealthy workers, /health reports them and jobs stay queued."""
    emulator.update_scenario(workers=0, unhealthy_workers=2, throttled_workers=1)
    job = await emulator_client.run(PROMPT)
    await asyncio.sleep(0.2)
    health = await emulator_client.health()
    assert (await emulator_client.status(job.id)).status == JobStatus.IN_QUEUE
    assert (health.workers.unhealthy, health.workers.throttled, health.jobs.in_queue) == (2, 1, 1)


async def test_adding_workers_starts_the_waiting_jobs(emulator: Emulator, emulator_client: RunPodClient) -> None:
    """A scenario change that adds a worker picks up the queue at once."""
    emulator.update_scenario(workers=0)
    job = await emulator_client.run(PROMPT)
    emulator.update_scenario(workers=1)
    finished, _ = await poll_job(emulator_client, job.id)
    assert finished.status == JobStatus.COMPLETED


async def test_control_api_changes_the_scenario(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """PATCH /_emulator/scenario changes fields and keeps the others; GET shows the result."""
    status, _ = await control(emulator, emulator_session, "PATCH", "/scenario", {"throttled_workers": 3})
    _, scenario = await control(emulator, emulator_session, "GET", "/scenario")
    _, health, _ = await call(emulator, emulator_session, "GET", "/health")
    assert status == 200
    assert scenario["throttled_workers"] == 3
    assert scenario["execution_s"] == emulator.scenario.execution_s
    assert health["workers"]["throttled"] == 3


async def test_control_api_rejects_an_invalid_scenario(
    emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """A scenario that does not validate is refused with a 400 naming the field, and nothing changes."""
    status, body = await control(emulator, emulator_session, "PATCH", "/scenario", {"workers": -1})
    assert status == 400
    assert "workers" in body["error"]
    assert emulator.scenario.workers == fast_scenario().workers


async def test_control_api_counts_requests_jobs_and_terminal_times(
    emulator: Emulator, emulator_session: aiohttp.ClientSession, emulator_client: RunPodClient
) -> None:
    """GET /_emulator/counters gives requests per operation and status, jobs per state and terminal times."""
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    await call(emulator, emulator_session, "GET", "/health", authorization="wrong")
    _, counters = await control(emulator, emulator_session, "GET", "/counters")
    assert counters["requests"]["runsync"] == {"200": 1}
    assert counters["requests"]["health"] == {"401": 1}
    assert counters["jobs"]["COMPLETED"] == 1
    assert counters["terminal"][job.id]["status"] == "COMPLETED"
    assert re.match(r"\d{4}-\d\d-\d\dT.*\+00:00$", counters["terminal"][job.id]["at"])


async def test_control_api_shows_a_job_with_the_input_its_run_carried(
    emulator: Emulator, emulator_session: aiohttp.ClientSession
) -> None:
    """GET /_emulator/jobs/{id} shows the job as /status does, with its input; an unknown id is a 404."""
    job_input = {**PROMPT, "seed": 7}
    _, submitted, _ = await call(emulator, emulator_session, "POST", "/run", body={"input": job_input})
    status, job = await control(emulator, emulator_session, "GET", f"/jobs/{submitted['id']}")
    missing, _ = await control(emulator, emulator_session, "GET", "/jobs/no-such-job")
    assert status == 200
    assert (job["id"], job["input"]) == (submitted["id"], job_input)
    assert job["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert missing == 404


async def test_control_api_scripts_faults(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """POST /_emulator/faults/health makes the next /health requests fail in that order."""
    await control(emulator, emulator_session, "POST", "/faults/health", ["server_error", "none"])
    statuses = [(await call(emulator, emulator_session, "GET", "/health"))[0] for _ in range(2)]
    assert statuses == [500, 200]


async def test_control_api_reset_forgets_jobs(
    emulator: Emulator, emulator_session: aiohttp.ClientSession, emulator_client: RunPodClient
) -> None:
    """After POST /_emulator/reset, earlier jobs are unknown and counters start again."""
    job = await emulator_client.run_sync(PROMPT, wait_ms=5_000)
    await control(emulator, emulator_session, "POST", "/reset")
    status, _, _ = await call(emulator, emulator_session, "GET", f"/status/{job.id}")
    assert status == 404
    assert emulator.counters.request_count("runsync") == 0


async def test_control_api_lists_the_personalities(emulator: Emulator, emulator_session: aiohttp.ClientSession) -> None:
    """GET /_emulator/personalities names every personality with a description."""
    _, personalities = await control(emulator, emulator_session, "GET", "/personalities")
    names = {item["name"] for item in personalities}
    assert {"sdxl", "comfyui", "a1111", "flux", "fail-json", "oversized", "hang"} <= names


async def test_module_command_serves_until_interrupted(emulator_session: aiohttp.ClientSession) -> None:
    """`python -m runpod_emulator` prints its URL, answers with the key, and exits 0 on Ctrl-C."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runpod_emulator", "--port", "0", "--api-key", "cli-key",
        "--endpoint-id", "cli-ep", "--workers", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        match = re.search(r"(http://\S+/v2)/cli-ep/", line)
        assert match, line
        async with emulator_session.get(f"{match.group(1)}/cli-ep/health", headers={"Authorization": "cli-key"}) as r:
            health = await r.json()
        assert health["workers"]["idle"] == 0
    finally:
        process.send_signal(signal.SIGINT)
        returncode = await asyncio.wait_for(process.wait(), 20)
    assert returncode == 0


async def test_runpod_bot_emulator_has_the_same_options() -> None:
    """`runpod-bot emulator --help` shows the emulator's own options."""
    process = await asyncio.create_subprocess_exec(
        str(RUNPOD_BOT), "emulator", "--help", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0
    for option in ("--api-key", "--endpoint-id", "--personality", "--fault", "--realistic"):
        assert option in stdout.decode()
