"""RunPod's real local worker server (`python handler.py --rp_serve_api`, from the `runpod` package), one per worker
style of `tests/data/local_workers/`, started together once per test session on free loopback ports.

`local_workers` maps a style (the handler file's stem: `sdxl`, `sdxl_turbo`, `sd15`, `a1111`, `comfyui`,
`comfy_legacy`, `flux`, `raises`, `slow`) to its server's URL. The servers run in the worker SDK's virtualenv
(`tests.worker_sdk`), with HOME in a temporary directory (the package reads ~/.runpod), and are stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.waiting import wait_until
from tests.worker_sdk import worker_python

HANDLERS = Path(__file__).resolve().parent.parent / "data" / "local_workers"
STYLES = ("sdxl", "sdxl_turbo", "sd15", "a1111", "comfyui", "comfy_legacy", "flux", "raises", "slow")
# The server is up in about 2 s on an idle machine; the suite shares 2 cores with other work.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# A free port is only free when it is picked: with other test processes opening sockets meanwhile (the suite runs on
# several), the server may find it taken; it is then started again on another, this many times at most.
PORT_ATTEMPTS = 3
PORT_TAKEN = "address already in use"


@dataclass
class LocalWorker:
    style: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(style: str, home: Path) -> LocalWorker:
    port = free_port()
    log = home / f"{style}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(worker_python()),
                str(HANDLERS / f"{style}.py"),
                "--rp_serve_api",
                "--rp_api_host",
                "127.0.0.1",
                "--rp_api_port",
                str(port),
            ],
            cwd=HANDLERS,
            env={"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONUNBUFFERED": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return LocalWorker(style, f"http://127.0.0.1:{port}", process, log)


async def all_ready(workers: list[LocalWorker], home: Path) -> None:
    """Wait until every server answers (a status request for an unknown job runs nothing); a server that found its
    port taken is started again on another, in place in `workers`."""
    attempts = dict.fromkeys(range(len(workers)), 1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

        async def answers(index: int) -> bool:
            worker = workers[index]
            if worker.process.poll() is not None:
                output = worker.log.read_text()
                if PORT_TAKEN not in output or attempts[index] >= PORT_ATTEMPTS:
                    raise RuntimeError(f"the {worker.style} worker server exited:\n{output}")
                attempts[index] += 1
                workers[index] = start(worker.style, home)
                return False
            try:
                async with http.post(f"{worker.url}/status/ready-check") as response:
                    return response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        async def every() -> bool:
            return all(await asyncio.gather(*(answers(index) for index in range(len(workers)))))

        await wait_until(every, timeout_s=READY_TIMEOUT_S)


def stop(workers: list[LocalWorker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


@pytest.fixture(scope="session")
def local_workers() -> Iterator[dict[str, str]]:
    """Every worker style's local worker server, by style: its URL."""
    with tempfile.TemporaryDirectory(prefix="rpb-workers-") as directory:
        home = Path(directory)
        workers = [start(style, home) for style in STYLES]
        try:
            asyncio.run(all_ready(workers, home))
            yield {worker.style: worker.url for worker in workers}
        finally:
            stop(workers)
