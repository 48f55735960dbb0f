"""Stopping `runpod-bot` with a signal, as a real process: whatever stops it also stops the embedded Redis it started.

SIGTERM and SIGHUP (a service manager, a closed terminal) are an orderly stop like Ctrl-C; SIGKILL cannot be caught,
so on Linux the server is also told to stop when its parent dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from runpod_emulator import Emulator
from storage.connection import create_client
from tests.fakes.discord import FakeDiscord
from tests.waiting import wait_until

RUNPOD_BOT = Path(sys.executable).parent / "runpod-bot"
# The checkout under test, whatever the editable install points at.
REPO = Path(__file__).resolve().parents[2]
STOP_WITHIN_S = 20.0
HANGING_PROMPT = "a lighthouse [emulator:hang]"
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is a Linux feature")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short working directory (the embedded Redis' socket lives under it)."""
    with tempfile.TemporaryDirectory(prefix="rpb-stop-") as directory:
        yield Path(directory)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent to reap it has stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with suppress(OSError):
        # The state follows the parenthesised command name.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


@asynccontextmanager
async def runpod_bot(workdir: Path, *args: str, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The command as a child process, with the embedded Redis under `workdir/data`; killed (with any server it
    left behind) when the test ends."""
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
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def embedded_server_pid(workdir: Path) -> int:
    """The pid of the server answering on `workdir/data/redis.sock`, once it answers."""
    socket_path = workdir / "data" / "redis.sock"
    client = create_client(f"unix://{socket_path}", reconnect=False)
    pid = 0

    async def answers() -> bool:
        nonlocal pid
        if not socket_path.exists():
            return False
        try:
            pid = int((await client.info("server"))["process_id"])
        except (RedisError, OSError):
            return False
        return True

    try:
        await wait_until(answers, timeout_s=30)
    finally:
        await client.aclose()
    return pid


async def read_until(stream: asyncio.StreamReader | None, text: str) -> str:
    """Read lines until one contains `text`; return everything read."""
    assert stream is not None
    seen = ""
    async with asyncio.timeout(30):
        while text not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"the output ended before {text!r}:\n{seen}")
            seen += line.decode()
    return seen


@asynccontextmanager
async def leftover_server_killed(pid: int) -> AsyncIterator[None]:
    """Kill the server if the test leaves it running (on failure), so it does not outlive the suite."""
    try:
        yield
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


async def stopped_by(process: asyncio.subprocess.Process, signum: signal.Signals) -> tuple[int, str]:
    process.send_signal(signum)
    async with asyncio.timeout(STOP_WITHIN_S):
        _stdout, stderr = await process.communicate()
    return process.returncode or 0, stderr.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
async def test_local_imagine_stopped_by_a_signal_stops_its_embedded_redis(
    workdir: Path, signum: signal.Signals
) -> None:
    """`imagine --local` stopped by SIGTERM or SIGHUP exits 128+signal and leaves no Redis server running."""
    async with runpod_bot(workdir, "imagine", HANGING_PROMPT, "--local") as process:
        pid = await embedded_server_pid(workdir)
        async with leftover_server_killed(pid):
            await read_until(process.stdout, "submitted")
            returncode, stderr = await stopped_by(process, signum)
            assert not alive(pid), "the embedded Redis is still running"
            assert returncode == 128 + signum, stderr
            assert "Traceback" not in stderr


@linux_only
async def test_local_imagine_killed_outright_takes_its_embedded_redis_along(workdir: Path) -> None:
    """Even a SIGKILL of `imagine --local`, which runs no cleanup, leaves no Redis server running for long."""
    async with runpod_bot(workdir, "imagine", HANGING_PROMPT, "--local") as process:
        pid = await embedded_server_pid(workdir)
        async with leftover_server_killed(pid):
            await read_until(process.stdout, "submitted")
            process.kill()
            await process.wait()
            await wait_until(lambda: not alive(pid), timeout_s=10)


def bot_env(fake: FakeDiscord, emulator: Emulator, workdir: Path) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE_URL": fake.api_base_url,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "RUNPOD_API_KEY": emulator.api_key,
        "RUNPOD_ENDPOINT_ID": emulator.endpoint_id,
        "RUNPOD_BASE_URL": emulator.base_url,
        "MODELS_FILE": str(workdir / "no-models.toml"),
        "HTTP_PORT": "0",
    }


async def bot_connected(fake: FakeDiscord) -> None:
    async def has_session() -> bool:
        return bool(await fake.sessions())

    await wait_until(has_session, timeout_s=30)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
async def test_bot_stopped_by_a_signal_stops_its_embedded_redis(
    workdir: Path, fake_discord: FakeDiscord, emulator: Emulator, signum: signal.Signals
) -> None:
    """`runpod-bot run` stopped by its service manager (SIGTERM) or a closed terminal (SIGHUP) stops cleanly and
    leaves no Redis server running."""
    async with runpod_bot(workdir, "run", **bot_env(fake_discord, emulator, workdir)) as process:
        pid = await embedded_server_pid(workdir)
        async with leftover_server_killed(pid):
            await bot_connected(fake_discord)
            returncode, stderr = await stopped_by(process, signum)
            assert not alive(pid), "the embedded Redis is still running"
            assert returncode == 0, stderr


@linux_only
async def test_bot_killed_outright_takes_its_embedded_redis_along(
    workdir: Path, fake_discord: FakeDiscord, emulator: Emulator
) -> None:
    """A SIGKILLed `runpod-bot run` leaves no Redis server running for long."""
    async with runpod_bot(workdir, "run", **bot_env(fake_discord, emulator, workdir)) as process:
        pid = await embedded_server_pid(workdir)
        async with leftover_server_killed(pid):
            await bot_connected(fake_discord)
            process.kill()
            await process.wait()
            await wait_until(lambda: not alive(pid), timeout_s=10)
