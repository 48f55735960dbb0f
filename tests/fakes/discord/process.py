"""Running the fake Discord as a separate process (what the crash tests need: the bot is killed, the fake is not)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.fakes.discord.views import InfoView

REPO_ROOT = Path(__file__).resolve().parents[3]
READY_PREFIX = "FAKE_DISCORD_READY "


class FakeDiscordProcess:
    """`python -m tests.fakes.discord` as a child process; `start()` returns once it listens.

    Usable from any thread or event loop (it is a plain `subprocess.Popen`); drive it with
    `FakeDiscordControl(process.control_url)`. Its logs go to `log_file` (appended), or to this process's stderr.
    `rate_limits` starts it with Discord's rate limits on (`rate_limit_overrides`: other numbers for some buckets).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        log_file: Path | None = None,
        log_level: str = "WARNING",
        rate_limits: bool = False,
        rate_limit_overrides: Mapping[str, tuple[int, float]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.log_file = log_file
        self.log_level = log_level
        self.rate_limits = rate_limits
        self.rate_limit_overrides = dict(rate_limit_overrides or {})
        self._process: subprocess.Popen[str] | None = None
        self._info: InfoView | None = None

    @property
    def info(self) -> InfoView:
        if self._info is None:
            raise RuntimeError("the fake Discord process is not running")
        return self._info

    @property
    def control_url(self) -> str:
        return self.info["http_base_url"]

    @property
    def api_base_url(self) -> str:
        return self.info["api_base_url"]

    @property
    def gateway_url(self) -> str:
        return self.info["gateway_url"]

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the fake Discord process is not running")
        return self._process.pid

    def start(self, *, timeout: float = 15.0) -> InfoView:
        command = [sys.executable, "-m", "tests.fakes.discord", "--host", self.host, "--port", str(self.port)]
        command += ["--log-level", self.log_level]
        if self.token is not None:
            command += ["--token", self.token]
        if self.rate_limits:
            command += ["--rate-limits"]
        for name, (count, per) in self.rate_limit_overrides.items():
            command += ["--rate-limit", f"{name}={count}/{per}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with contextlib.ExitStack() as stack:
            # The child keeps its own handle on the log file; ours can close once it has started.
            stderr = stack.enter_context(self.log_file.open("ab")) if self.log_file is not None else None
            self._process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
            )
        self._info = self._await_ready(self._process, timeout)
        return self._info

    @staticmethod
    def _await_ready(process: subprocess.Popen[str], timeout: float) -> InfoView:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"the fake Discord process did not start (exit status {process.poll()})")
            readable, _, _ = select.select([process.stdout], [], [], remaining)
            if not readable:
                continue
            line = process.stdout.readline()
            if line.startswith(READY_PREFIX):
                info: InfoView = json.loads(line.removeprefix(READY_PREFIX))
                # Nothing else is written to stdout; closing it means the child can never block on a full pipe.
                process.stdout.close()
                return info

    def stop(self, *, timeout: float = 5.0) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        self._info = None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
