"""`runpod-bot` against RunPod's real local worker server (`python handler.py --rp_serve_api`), one per worker style."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from PIL import Image

from tests.integration.test_cli_jobs import Result, runpod_bot, workdir  # noqa: F401 - `workdir` is a fixture
from tests.waiting import wait_until

# Model name, preset, worker style (tests/data/local_workers/<style>.py), images asked for.
MODELS = (
    ("sdxl", "sdxl", "sdxl", 2),
    ("turbo", "sdxl-turbo", "sdxl_turbo", 2),
    ("sd15", "sd15", "sd15", 2),
    ("a1111", "a1111", "a1111", 2),
    ("comfyui", "comfyui", "comfyui", 1),
    ("comfy-legacy", "comfyui", "comfy_legacy", 1),
    ("flux", "flux", "flux", 1),
    ("broken", "sdxl", "raises", 1),
    ("slow", "sdxl", "slow", 1),
)
WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{guidance}}"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
}


@pytest.fixture
def models_file(workdir: Path, local_workers: dict[str, str]) -> Path:  # noqa: F811 - the fixture, used
    """A models.toml with one model per worker style, each on its local worker server."""
    (workdir / "workflow.json").write_text(json.dumps(WORKFLOW))
    tables = []
    for name, preset, style, _count in MODELS:
        workflow = 'workflow_file = "workflow.json"\n' if preset == "comfyui" else ""
        url = local_workers[style]
        tables.append(f'[[models]]\nname = "{name}"\nlocal_worker_url = "{url}"\npreset = "{preset}"\n{workflow}')
    path = workdir / "models.toml"
    path.write_text("\n".join(tables))
    return path


@pytest.fixture
def env(models_file: Path, redis: aioredis.Redis, redis_url: str) -> dict[str, str]:
    """No RunPod key or endpoint: only the models file (and the suite's Redis, emptied for each test)."""
    return {
        "MODELS_FILE": str(models_file),
        "REDIS_URL": redis_url,
        "ALLOW_PRIVATE_IMAGE_URLS": "true",
        "USER_COOLDOWN_S": "0",
    }


@pytest.mark.parametrize(
    ("model", "count"), [(name, count) for name, _p, style, count in MODELS if style not in ("raises", "slow")]
)
async def test_imagine_saves_the_images_of_each_worker_style(
    workdir: Path,  # noqa: F811 - the fixture
    env: dict[str, str],
    model: str,
    count: int,
) -> None:
    """`imagine --model M` saves every image the local worker returns, as PNG files that open."""
    result = await runpod_bot(
        workdir, "imagine", "a red fox", "--model", model, "--seed", "5", "--count", str(count), "--out", "out", **env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done; saved" in result.stdout
    saved = sorted((workdir / "out").glob("*.png"))
    assert len(saved) == count
    for path in saved:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size == (8, 8)


async def test_imagine_on_a_raising_worker_exits_1_with_its_error(
    workdir: Path,  # noqa: F811 - the fixture
    env: dict[str, str],
) -> None:
    """A handler that raises: `imagine` exits 1 and shows the handler's error message, not a traceback."""
    result = await runpod_bot(workdir, "imagine", "a red fox", "--model", "broken", **env)
    assert result.returncode == 1
    assert "failed: CUDA out of memory. Tried to allocate 20.00 GiB" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (workdir / "out").exists()


async def test_health_says_unknown_for_a_local_worker(
    workdir: Path,  # noqa: F811 - the fixture
    env: dict[str, str],
) -> None:
    """`health` says the local worker server has no /health, exits 0, and sends it nothing that hangs."""
    result = await runpod_bot(workdir, "health", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    sdxl_row = next(line for line in result.stdout.splitlines() if line.startswith("sdxl "))
    assert "unknown (local worker server has no /health)" in sdxl_row


async def test_cancel_says_the_local_worker_cannot_cancel(
    workdir: Path,  # noqa: F811 - the fixture
    env: dict[str, str],
) -> None:
    """`cancel` of a running local-worker job says the server cannot cancel it; `imagine` then ends, cancelled."""
    imagine = asyncio.create_task(runpod_bot(workdir, "imagine", "a slow fox", "--model", "slow", **env))
    listed: list[Result] = []

    async def job_listed() -> bool:
        listing = await runpod_bot(workdir, "jobs", **env)
        listed.append(listing)
        return "slow" in listing.stdout

    await wait_until(job_listed, timeout_s=20)
    jid = next(line.split()[0] for line in listed[-1].stdout.splitlines() if " slow " in line)
    result = await runpod_bot(workdir, "cancel", jid, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RunPod's local worker server cannot cancel a job" in result.stdout
    ended = await imagine
    assert ended.returncode == 1
    assert f"{jid}: cancelled: RunPod's local worker server cannot cancel a job" in ended.stdout
    assert not (workdir / "out").exists()


async def test_check_needs_no_api_key_for_a_local_worker(
    workdir: Path,  # noqa: F811 - the fixture
    env: dict[str, str],
) -> None:
    """`check` with only local workers asks for no RUNPOD_API_KEY and reports each one's health as unknown."""
    result = await runpod_bot(workdir, "check", **env)
    assert "RUNPOD_API_KEY" not in result.stdout
    assert "runpod sdxl: unknown (local worker server has no /health)" in result.stdout


async def test_imagine_timeout_on_a_local_worker_says_it_cannot_cancel(
    workdir: Path,  # noqa: F811 - the fixture
    env: dict[str, str],
) -> None:
    """`imagine --timeout` on a local worker exits 124 saying the server cannot cancel, not "cancelled at RunPod"."""
    result = await runpod_bot(workdir, "imagine", "a slow fox", "--model", "slow", "--timeout", "1", **env)
    assert result.returncode == 124, result.stdout + result.stderr
    assert "RunPod's local worker server cannot cancel a job" in result.stderr
    assert "cancelled at RunPod" not in result.stderr
