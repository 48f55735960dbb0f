"""The job commands of `runpod-bot`, run as a real process: imagine, status, jobs, cancel, health and check."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from runpod_client.emulator import Emulator
from tests.fakes.discord import FakeDiscord
from tests.waiting import wait_until

RUNPOD_BOT = Path(sys.executable).parent / "runpod-bot"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short working directory (the embedded Redis' socket lives under it)."""
    with tempfile.TemporaryDirectory(prefix="rpb-cli-") as directory:
        yield Path(directory)


async def runpod_bot(workdir: Path, *args: str, **env: str) -> Result:
    """Run the command without blocking the loop (the emulator in this process must keep answering)."""
    base = {"PATH": os.environ["PATH"], "HOME": str(workdir), "DATA_DIR": str(workdir / "data")}
    # A checkout other than the installed one runs its own code when PYTHONPATH names it.
    if "PYTHONPATH" in os.environ:
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    process = await asyncio.create_subprocess_exec(
        str(RUNPOD_BOT),
        *args,
        cwd=workdir,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    return Result(process.returncode or 0, stdout.decode(), stderr.decode())


def emulator_env(emulator: Emulator, **changes: str) -> dict[str, str]:
    return {
        "RUNPOD_BASE_URL": emulator.base_url,
        "RUNPOD_API_KEY": emulator.api_key,
        "RUNPOD_ENDPOINT_ID": emulator.endpoint_id,
        "ALLOW_PRIVATE_IMAGE_URLS": "true",
        "USER_COOLDOWN_S": "0",
        **changes,
    }


async def test_local_imagine_writes_a_png_without_credentials(workdir: Path) -> None:
    """`imagine --local` needs no credentials and no Redis install, and saves a PNG that opens."""
    result = await runpod_bot(workdir, "imagine", "a cute magical flying dog", "--local", "--out", "out")
    assert result.returncode == 0, result.stderr
    assert "completed; saved" in result.stdout
    (png,) = (workdir / "out").glob("*.png")
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (1024, 1024)


async def test_imagine_shows_progress_and_the_job_is_then_listed(workdir: Path, emulator: Emulator) -> None:
    """Against an endpoint, imagine reports progress, and `status` and `jobs --user 0` show the finished job."""
    emulator.update_scenario(execution_s=1.5)
    env = emulator_env(emulator, POLL_FIRST_MS="200", POLL_RUNNING_MAX_MS="400")
    result = await runpod_bot(workdir, "imagine", "a lighthouse", "--seed", "7", "--steps", "20", **env)
    assert result.returncode == 0, result.stderr
    assert "seed 7" in result.stdout
    assert "step " in result.stdout
    jid = result.stdout.split(":", 1)[0]
    status = await runpod_bot(workdir, "status", jid, **env)
    assert "completed" in status.stdout
    assert "a lighthouse" in status.stdout
    listing = await runpod_bot(workdir, "jobs", "--user", "0", **env)
    assert jid in listing.stdout


async def test_saved_files_name_the_seed_that_rendered_the_batch(workdir: Path, emulator: Emulator) -> None:
    """worker-stable_diffusion_v1 renders a batch from one seed: each file names that seed, not the worker's seed+i."""
    models = workdir / "models.toml"
    models.write_text(f'[[models]]\nname = "sd"\nendpoint_id = "{emulator.endpoint_id}"\npreset = "sd15"\n')
    prompt = "a fox [emulator:sd-v1-base64]"
    args = ("--seed", "42", "--count", "2", "--out", "out")
    result = await runpod_bot(workdir, "imagine", prompt, *args, **emulator_env(emulator, MODELS_FILE=str(models)))
    assert result.returncode == 0, result.stderr
    names = sorted(path.name.split("-", 1)[1] for path in (workdir / "out").glob("*.png"))
    assert names == ["1-seed42.png", "2-seed42.png"]


async def test_invalid_option_names_the_allowed_range(workdir: Path) -> None:
    """A bad option is refused with its allowed range and exit status 2, before anything is sent."""
    result = await runpod_bot(workdir, "imagine", "a cat", "--local", "--count", "9")
    assert result.returncode == 2
    assert "`count` 9 is out of range. Allowed: 1–2." in result.stderr


async def test_cancel_stops_a_queued_job(workdir: Path, emulator: Emulator) -> None:
    """`cancel` sends the job's cancel to RunPod."""
    emulator.update_scenario(workers=0)
    env = emulator_env(emulator)
    imagine = asyncio.create_task(runpod_bot(workdir, "imagine", "never starts", **env))
    await wait_until(lambda: bool(emulator.snapshot()["received"].get("run")))
    listing = await runpod_bot(workdir, "jobs", "--user", "0", **env)
    jid = listing.stdout.splitlines()[1].split()[0]
    status = await runpod_bot(workdir, "status", jid, **env)
    (runpod_id,) = (line.split()[-1] for line in status.stdout.splitlines() if line.startswith("runpod id"))
    result = await runpod_bot(workdir, "cancel", jid, **env)
    assert result.returncode == 0, result.stderr
    assert "cancel sent" in result.stdout
    finished = await imagine
    assert finished.returncode == 1
    assert "cancelled" in finished.stdout
    runpod_job = emulator.job(runpod_id)
    assert runpod_job is not None
    assert runpod_job["status"] == "CANCELLED"


async def test_health_shows_workers_and_the_tracker(workdir: Path, emulator: Emulator) -> None:
    """`health` prints the endpoint's worker counts and the tracker's own line."""
    emulator.update_scenario(throttled_workers=2)
    result = await runpod_bot(workdir, "health", **emulator_env(emulator))
    assert result.returncode == 0, result.stderr
    assert emulator.endpoint_id in result.stdout
    assert "tracker rpb:" in result.stdout


def discord_env(fake: FakeDiscord, token: str | None = None) -> dict[str, str]:
    return {"DISCORD_TOKEN": token or fake.token, "DISCORD_API_BASE_URL": fake.api_base_url}


async def test_check_says_when_the_key_is_rejected(
    workdir: Path, emulator: Emulator, fake_discord: FakeDiscord
) -> None:
    """A wrong RUNPOD_API_KEY is reported plainly as a 401."""
    env = emulator_env(emulator, RUNPOD_API_KEY="wrong-key-value", **discord_env(fake_discord))
    result = await runpod_bot(workdir, "check", **env)
    assert result.returncode == 1
    assert "RunPod rejected RUNPOD_API_KEY (401 Unauthorized)" in result.stdout
    assert "wrong-key-value" not in result.stdout + result.stderr


async def test_check_says_when_the_endpoint_is_unknown(
    workdir: Path, emulator: Emulator, fake_discord: FakeDiscord
) -> None:
    """An unknown RUNPOD_ENDPOINT_ID is reported plainly as a 404."""
    env = emulator_env(emulator, RUNPOD_ENDPOINT_ID="no-such-endpoint", **discord_env(fake_discord))
    result = await runpod_bot(workdir, "check", **env)
    assert result.returncode == 1
    assert "RunPod does not know endpoint no-such-endpoint (404)" in result.stdout


async def test_check_passes_and_prints_the_invite_link(
    workdir: Path, emulator: Emulator, fake_discord: FakeDiscord
) -> None:
    """With every setting right, check prints ok lines, the invite link with exactly the bot's permissions, exit 0."""
    result = await runpod_bot(workdir, "check", **emulator_env(emulator, **discord_env(fake_discord)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"runpod default: ok (endpoint {emulator.endpoint_id}" in result.stdout
    application_id = (await fake_discord.info())["application_id"]
    assert (
        f"invite: https://discord.com/oauth2/authorize?client_id={application_id}"
        "&scope=bot+applications.commands&permissions=2147600384"
    ) in result.stdout


async def test_check_says_when_discord_rejects_the_token(
    workdir: Path, emulator: Emulator, fake_discord: FakeDiscord
) -> None:
    """A wrong DISCORD_TOKEN is reported plainly as a 401, without echoing it."""
    env = emulator_env(emulator, **discord_env(fake_discord, token="not-the-real-token"))
    result = await runpod_bot(workdir, "check", **env)
    assert result.returncode == 1
    assert "Discord rejected DISCORD_TOKEN (401 Unauthorized)" in result.stdout
    assert "not-the-real-token" not in result.stdout + result.stderr
