"""The chaos suite's child processes: the RunPod emulator, the bot (one process per role) and a restartable Redis.

Every wait here is bounded, and nothing blocks the event loop: processes are asyncio subprocesses, and the one
blocking start-up helper (the fake Discord's `FakeDiscordProcess.start`) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from storage.connection import create_client
from storage.embedded import EmbeddedRedis
from storage.keys import Keys

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
EMULATOR_READY_PREFIX = "control API: "
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
# The environment a child keeps from ours: enough to run Python, nothing that could configure the bot.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A clean environment for a child process: no settings leak in from the caller's shell or `.env`."""
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    # The checkout under test, whatever the editable install lists (children run outside the repository).
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


def bot_command() -> list[str]:
    """`runpod-bot` next to this interpreter (the project's virtualenv), else the one on PATH."""
    beside = Path(sys.executable).parent / "runpod-bot"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("runpod-bot")
    if found is None:
        raise RuntimeError("runpod-bot is not installed: run `make install` first")
    return [found]


async def _wait_exit(process: asyncio.subprocess.Process, timeout_s: float) -> int | None:
    try:
        return await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        return None


# --- the RunPod emulator ------------------------------------------------------------------------------------------


@dataclass
class EmulatorProcess:
    """`python -m runpod_emulator` with a scenario file; `start()` returns once it serves."""

    scenario: Mapping[str, Any]
    work_dir: Path
    log_path: Path
    api_key: str
    endpoint_id: str
    url: str = ""
    _process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """What `RUNPOD_BASE_URL` is set to (ends in /v2)."""
        return f"{self.url}/v2"

    @property
    def control_url(self) -> str:
        return f"{self.url}/_emulator"

    async def start(self) -> None:
        scenario_file = self.work_dir / "emulator-scenario.json"
        scenario_file.write_text(json.dumps(self.scenario, indent=2))
        command = [sys.executable, "-m", "runpod_emulator", "--host", "127.0.0.1", "--port", "0"]
        command += ["--api-key", self.api_key, "--endpoint-id", self.endpoint_id]
        command += ["--scenario-file", str(scenario_file), "--log-level", "WARNING"]
        with self.log_path.open("ab") as stderr:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                cwd=REPO_ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=child_env({}),
            )
        assert self._process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                line = (await self._process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"the emulator exited at start; see {self.log_path}")
                if line.startswith(EMULATOR_READY_PREFIX):
                    # "control API: http://127.0.0.1:PORT/_emulator/  operations: ..."
                    self.url = line.removeprefix(EMULATOR_READY_PREFIX).split()[0].removesuffix("/_emulator/")
                    break
        # Keep reading its stdout into the log, so the child can never block on a full pipe.
        self._drain = asyncio.create_task(self._copy_stdout(), name="emulator-stdout")

    async def _copy_stdout(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        with self.log_path.open("ab") as sink:
            while line := await self._process.stdout.readline():
                sink.write(line)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            if await _wait_exit(process, STOP_TIMEOUT_S) is None:
                process.kill()
                await process.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 5)


class EmulatorControl:
    """The emulator's control API and the job API calls the audit needs."""

    def __init__(self, emulator: EmulatorProcess, http: aiohttp.ClientSession) -> None:
        self.emulator = emulator
        self.http = http

    async def counters(self) -> dict[str, Any]:
        async with self.http.get(f"{self.emulator.control_url}/counters") as response:
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data

    async def patch_scenario(self, **fields: Any) -> None:
        async with self.http.patch(f"{self.emulator.control_url}/scenario", json=fields) as response:
            response.raise_for_status()

    async def script_faults(self, operation: str, kinds: Sequence[str]) -> None:
        async with self.http.post(f"{self.emulator.control_url}/faults/{operation}", json=list(kinds)) as response:
            response.raise_for_status()

    async def job(self, job_id: str) -> dict[str, Any]:
        """A job as the emulator holds it: what /status shows, and the input its /run carried (the audit ties each
        job to its submission by it)."""
        async with self.http.get(f"{self.emulator.control_url}/jobs/{job_id}") as response:
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data


# --- the bot ------------------------------------------------------------------------------------------------------


@dataclass
class BotProcess:
    """One `runpod-bot run --role ROLE` child; its stdout and stderr go to its own log file."""

    name: str
    role: str
    log_path: Path
    process: asyncio.subprocess.Process
    started_at: float = field(default_factory=time.monotonic)
    # Set when the suite itself stops or kills the process: any other exit is a crash.
    expected_exit: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    @property
    def connects(self) -> bool:
        """Whether it holds the Discord gateway (and so answers interactions)."""
        return self.role != "poller"

    @property
    def polls(self) -> bool:
        """Whether it polls RunPod and posts results."""
        return self.role != "gateway"

    async def kill(self) -> None:
        """SIGKILL: no cleanup at all, exactly like a crash or an OOM kill."""
        self.expected_exit = True
        if self.running:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int | None:
        """SIGTERM (the bot closes gracefully and gives its leases back); SIGKILL if it takes too long."""
        self.expected_exit = True
        if self.running:
            self.process.terminate()
        status = await _wait_exit(self.process, STOP_TIMEOUT_S)
        if status is None:
            log.warning("%s did not stop within %.0f s of SIGTERM; killing it", self.name, STOP_TIMEOUT_S)
            await self.kill()
        return status


@dataclass
class BotLauncher:
    """Starts bot processes with one environment; each gets a numbered name and its own log file."""

    env: Mapping[str, str]
    log_dir: Path
    work_dir: Path
    launched: int = 0

    async def launch(self, role: str) -> BotProcess:
        self.launched += 1
        name = f"bot-{self.launched:02d}-{role}"
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as output:
            process = await asyncio.create_subprocess_exec(
                *bot_command(),
                "run",
                "--role",
                role,
                # Not the repository: a developer's `.env` there must not configure the bot under test.
                cwd=self.work_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                env=child_env(self.env),
            )
        log.debug("started %s (pid %s)", name, process.pid)
        return BotProcess(name=name, role=role, log_path=log_path, process=process)


# --- Redis --------------------------------------------------------------------------------------------------------


@dataclass
class ChaosRedis:
    """The embedded server in a temporary directory (restartable), or the `REDIS_URL` the caller gave (not)."""

    url: str
    prefix: str
    server: EmbeddedRedis | None = None

    @property
    def restartable(self) -> bool:
        return self.server is not None

    @classmethod
    async def open(cls, data_dir: Path, external_url: str | None, prefix: str) -> ChaosRedis:
        if external_url:
            return cls(url=external_url, prefix=prefix)
        server = EmbeddedRedis(data_dir=data_dir)
        await server.start()
        return cls(url=server.url, prefix=prefix, server=server)

    async def restart(self) -> float:
        """Stop the server (SIGTERM: the append-only file is flushed) and start it on the same data; returns the
        seconds it was down."""
        if self.server is None:
            raise RuntimeError("an external Redis is not restarted by the suite")
        began = time.monotonic()
        await self.server.stop()
        await self.server.start()
        return time.monotonic() - began

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()
            return
        # A shared Redis keeps nothing of the run: every key is under this run's own prefix.
        client = create_client(self.url)
        try:
            async for key in client.scan_iter(match=Keys(self.prefix).tag + ":*", count=1000):
                await client.delete(key)
        finally:
            await client.aclose()
