"""The job commands of `runpod-bot`, run as a real process: imagine, status, jobs, cancel, health and check."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from PIL import Image

from runpod_emulator import Emulator
from tests.fakes.discord import FakeDiscord
from tests.waiting import wait_until

RUNPOD_BOT = Path(sys.executable).parent / "runpod-bot"
# The checkout under test, whatever the editable install points at.
REPO = Path(__file__).resolve().parents[2]


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
    return await runpod_bot_within(60, workdir, *args, **env)


async def runpod_bot_within(within_s: float, workdir: Path, *args: str, **env: str) -> Result:
    """Run the command; one still running after `within_s` is killed and the test fails."""
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "DATA_DIR": str(workdir / "data"),
        "PYTHONPATH": str(REPO),
    }
    process = await asyncio.create_subprocess_exec(
        str(RUNPOD_BOT),
        *args,
        cwd=workdir,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(within_s):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        pytest.fail(f"`runpod-bot {' '.join(args)}` still running after {within_s} s:\n{stdout.decode()}")
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
    assert "done; saved" in result.stdout
    (png,) = (workdir / "out").glob("*.png")
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (1024, 1024)


async def test_local_imagine_saves_a_png_carrying_its_parameters(workdir: Path) -> None:
    """The PNG `imagine --local --out DIR` saves holds the job's parameters in A1111's `parameters` text."""
    args = ("--negative", "fog", "--seed", "11", "--steps", "3", "--local", "--out", "out")
    result = await runpod_bot(workdir, "imagine", 'a "quiet" harbour: dawn', *args)
    assert result.returncode == 0, result.stderr
    (png,) = (workdir / "out").glob("*.png")
    with Image.open(png) as image:
        parameters = image.text["parameters"]  # type: ignore[attr-defined]
    assert parameters.splitlines() == [
        'a "quiet" harbour: dawn',
        "Negative prompt: fog",
        "Steps: 3, CFG scale: 7.5, Seed: 11, Size: 1024x1024, Model: default",
    ]


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
    assert "done" in status.stdout
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


async def test_imagine_refuses_a_prompt_denylist_term_before_anything_is_sent(
    workdir: Path, emulator: Emulator
) -> None:
    """The operator's PROMPT_DENYLIST holds on the command line too: refused with the term named, exit status 1."""
    env = emulator_env(emulator, PROMPT_DENYLIST="Blood Bath")
    result = await runpod_bot(workdir, "imagine", "a blood  bath at dawn", **env)
    assert result.returncode == 1
    assert "the term “Blood Bath” is on PROMPT_DENYLIST" in result.stderr
    assert emulator.counters.request_count("run") == 0


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


async def test_status_and_cancel_find_a_job_by_its_runpod_id(workdir: Path, emulator: Emulator) -> None:
    """An operator holding the id RunPod's console shows can look the job up and cancel it with that id."""
    emulator.update_scenario(workers=0)
    env = emulator_env(emulator)
    imagine = asyncio.create_task(runpod_bot(workdir, "imagine", "found by its runpod id", **env))
    await wait_until(lambda: bool(emulator.snapshot()["received"].get("run")))
    listing = await runpod_bot(workdir, "jobs", "--user", "0", **env)
    jid = listing.stdout.splitlines()[1].split()[0]
    by_jid = await runpod_bot(workdir, "status", jid, **env)
    (runpod_id,) = (line.split()[-1] for line in by_jid.stdout.splitlines() if line.startswith("runpod id"))
    by_runpod_id = await runpod_bot(workdir, "status", runpod_id, **env)
    cancelled = await runpod_bot(workdir, "cancel", runpod_id, **env)
    await imagine
    assert by_runpod_id.returncode == 0, by_runpod_id.stderr
    assert f"job        {jid}" in by_runpod_id.stdout
    assert f"{jid}: cancel sent" in cancelled.stdout
    runpod_job = emulator.job(runpod_id)
    assert runpod_job is not None
    assert runpod_job["status"] == "CANCELLED"


async def test_concurrent_imagines_each_save_only_their_own_images(
    workdir: Path, emulator: Emulator, redis: aioredis.Redis, redis_url: str
) -> None:
    """Three `imagine` at once on one Redis: each saves exactly its own job's images into its own --out, exit 0."""
    emulator.update_scenario(execution_s=1.5)
    env = emulator_env(
        emulator,
        REDIS_URL=redis_url,
        USER_ACTIVE_JOBS="5",
        POLL_FIRST_MS="100",
        POLL_RUNNING_MIN_MS="100",
        POLL_RUNNING_MAX_MS="200",
    )
    names = ("first", "second", "third")
    results = await asyncio.gather(
        *(runpod_bot_within(30, workdir, "imagine", f"the {name} lighthouse", "--out", name, **env) for name in names)
    )
    for name, result in zip(names, results, strict=True):
        assert result.returncode == 0, result.stdout + result.stderr
        jid = result.stdout.split(":", 1)[0]
        saved = sorted(path.name for path in (workdir / name).iterdir())
        assert saved, f"{name} saved nothing"
        assert all(file.startswith(f"{jid}-") for file in saved), (name, jid, saved)


async def test_imagine_gives_up_after_its_timeout_and_names_the_job(workdir: Path, emulator: Emulator) -> None:
    """`imagine --timeout 2` on a job that never finishes exits 124 within seconds, naming the job and `status`."""
    started = time.monotonic()
    result = await runpod_bot_within(
        20, workdir, "imagine", "a lighthouse [emulator:hang]", "--timeout", "2", **emulator_env(emulator)
    )
    assert result.returncode == 124, result.stdout + result.stderr
    assert time.monotonic() - started < 15
    jid = result.stdout.split(":", 1)[0]
    assert f"{jid}: no result within 2 s" in result.stderr
    assert f"runpod-bot status {jid}" in result.stderr
    assert "Traceback" not in result.stderr


async def test_imagine_cancels_the_job_at_runpod_when_it_gives_up(workdir: Path, emulator: Emulator) -> None:
    """A job the terminal stopped waiting for is cancelled at RunPod (nobody would collect its paid result)."""
    env = emulator_env(emulator)
    result = await runpod_bot_within(20, workdir, "imagine", "a lighthouse [emulator:hang]", "--timeout", "2", **env)
    assert "cancelled at RunPod" in result.stderr, result.stderr
    jid = result.stdout.split(":", 1)[0]
    status = await runpod_bot(workdir, "status", jid, **env)
    (runpod_id,) = (line.split()[-1] for line in status.stdout.splitlines() if line.startswith("runpod id"))
    runpod_job = emulator.job(runpod_id)
    assert runpod_job is not None
    assert runpod_job["status"] == "CANCELLED"
    assert "cancelled" in status.stdout


async def test_health_shows_workers_and_the_tracker(workdir: Path, emulator: Emulator) -> None:
    """`health` prints the endpoint's worker counts and the tracker's own line."""
    emulator.update_scenario(throttled_workers=2)
    result = await runpod_bot(workdir, "health", **emulator_env(emulator))
    assert result.returncode == 0, result.stderr
    assert emulator.endpoint_id in result.stdout
    assert "tracker rpb:" in result.stdout


# Wrong, but as long as real ones: the settings refuse anything shorter before the services are asked.
WRONG_KEY = "rpa_WRONG0KEY0VALUE0000000000000000000000000000000"
WRONG_TOKEN = "ZmFrZS1kaXNjb3JkLWJvdA.RkFLRQ.not-the-real-token-of-this-bot-0123456789ab"


def discord_env(fake: FakeDiscord, token: str | None = None) -> dict[str, str]:
    return {"DISCORD_TOKEN": token or fake.token, "DISCORD_API_BASE_URL": fake.api_base_url}


async def test_check_says_when_the_key_is_rejected(
    workdir: Path, emulator: Emulator, fake_discord: FakeDiscord
) -> None:
    """A wrong RUNPOD_API_KEY is reported plainly as a 401."""
    env = emulator_env(emulator, RUNPOD_API_KEY=WRONG_KEY, **discord_env(fake_discord))
    result = await runpod_bot(workdir, "check", **env)
    assert result.returncode == 1
    assert "RunPod rejected RUNPOD_API_KEY (401 Unauthorized)" in result.stdout
    assert WRONG_KEY not in result.stdout + result.stderr


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
        "&scope=bot+applications.commands&permissions=311385245696"
    ) in result.stdout


async def test_check_prints_the_user_install_link(workdir: Path, emulator: Emulator, fake_discord: FakeDiscord) -> None:
    """With user installs on (the default), check also prints the link that installs the app on a member's account."""
    result = await runpod_bot(workdir, "check", **emulator_env(emulator, **discord_env(fake_discord)))
    application_id = (await fake_discord.info())["application_id"]
    assert (
        f"user install: https://discord.com/oauth2/authorize?client_id={application_id}"
        "&integration_type=1&scope=applications.commands"
    ) in result.stdout


async def test_check_prints_no_user_install_link_when_they_are_off(
    workdir: Path, emulator: Emulator, fake_discord: FakeDiscord
) -> None:
    """USER_INSTALLS=false: check prints the server invite only."""
    env = emulator_env(emulator, USER_INSTALLS="false", **discord_env(fake_discord))
    result = await runpod_bot(workdir, "check", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "invite: " in result.stdout
    assert "user install" not in result.stdout


async def test_check_says_when_discord_rejects_the_token(
    workdir: Path, emulator: Emulator, fake_discord: FakeDiscord
) -> None:
    """A wrong DISCORD_TOKEN is reported plainly as a 401, without echoing it."""
    env = emulator_env(emulator, **discord_env(fake_discord, token=WRONG_TOKEN))
    result = await runpod_bot(workdir, "check", **env)
    assert result.returncode == 1
    assert "Discord rejected DISCORD_TOKEN (401 Unauthorized)" in result.stdout
    assert WRONG_TOKEN not in result.stdout + result.stderr
