"""The embedded single-machine Redis: starts, persists through a restart, and leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.connection import RedisUnavailableError, connect, open_redis
from storage.embedded import EmbeddedRedis, EmbeddedRedisError, find_server_binary
from tests.waiting import wait_until


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short private directory (unix socket paths are limited to about 100 characters)."""
    with tempfile.TemporaryDirectory(prefix="rpb-emb-") as directory:
        yield Path(directory).resolve()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_server_starts_and_answers(data_dir: Path) -> None:
    """The bundled server starts on a unix socket under the data directory and answers commands."""
    server = EmbeddedRedis(data_dir=data_dir)
    await server.start()
    try:
        assert server.socket_path.parent == data_dir
        client = await connect(server.url)
        assert await client.set("greeting", "hello")
        assert await client.get("greeting") == b"hello"
        config = await client.config_get("appendonly")
        assert config["appendonly"] == "yes"
        await client.aclose()
    finally:
        await server.stop()


async def test_key_survives_a_restart_through_the_append_only_file(data_dir: Path) -> None:
    """A key written before the server restarts is still there afterwards."""
    first = EmbeddedRedis(data_dir=data_dir)
    await first.start()
    client = await connect(first.url)
    await client.set("job:1", "queued")
    await client.aclose()
    await first.stop()

    second = EmbeddedRedis(data_dir=data_dir)
    await second.start()
    try:
        client = await connect(second.url)
        assert await client.get("job:1") == b"queued"
        await client.aclose()
    finally:
        await second.stop()


async def test_client_rides_out_a_server_restart(data_dir: Path) -> None:
    """A command sent while the server restarts waits for it and succeeds, on a connection that was open before."""
    server = EmbeddedRedis(data_dir=data_dir)
    await server.start()
    client = await connect(server.url)
    try:
        await client.set("job:1", "queued")
        await server.stop()

        async def start_again() -> None:
            # Down for a moment, as during a real restart.
            await asyncio.sleep(0.3)
            await server.start()

        restart = asyncio.create_task(start_again())
        assert await client.get("job:1") == b"queued"
        await restart
    finally:
        await client.aclose()
        await server.stop()


async def test_process_is_gone_after_stop(data_dir: Path) -> None:
    """Stopping the server ends its process and removes its socket."""
    server = EmbeddedRedis(data_dir=data_dir)
    await server.start()
    pid = server.pid
    assert pid is not None
    assert process_exists(pid)
    await server.stop()
    assert not process_exists(pid)
    assert not server.socket_path.exists()


async def test_open_redis_stops_the_embedded_server_on_exit(data_dir: Path) -> None:
    """Leaving the context closes the client and stops the server it started."""
    async with open_redis(None, data_dir=data_dir) as client:
        assert await client.ping()
        info = await client.info("server")
        pid = int(info["process_id"])
        assert process_exists(pid)
    assert not process_exists(pid)


async def test_server_outlives_the_thread_and_loop_that_started_it(data_dir: Path) -> None:
    """A server started from a worker thread's own event loop keeps running after that thread has ended (its
    parent-death signal must not follow a thread that is gone while the server is still wanted)."""
    server = EmbeddedRedis(data_dir=data_dir)
    starter = threading.Thread(target=lambda: asyncio.run(server.start()), name="starter")
    starter.start()
    try:
        await wait_until(lambda: not starter.is_alive())
        assert starter.native_id is not None
        # Gone from the kernel too, not only from Python's view.
        await wait_until(lambda: not Path(f"/proc/self/task/{starter.native_id}").exists())
        with pytest.raises(TimeoutError):
            await wait_until(lambda: not server.running, timeout_s=1)
        client = await connect(server.url)
        assert await client.ping()
        await client.aclose()
    finally:
        await server.stop()


def test_configured_binary_that_is_missing_is_refused(tmp_path: Path) -> None:
    """REDIS_SERVER_BIN naming no executable gives an error that names the setting."""
    with pytest.raises(EmbeddedRedisError, match="REDIS_SERVER_BIN"):
        find_server_binary(tmp_path / "no-such-server")


def test_bundled_binary_is_found_without_configuration() -> None:
    """With nothing configured, the binary bundled by the project's dependencies is found."""
    binary = find_server_binary()
    assert binary.is_file()
    assert os.access(binary, os.X_OK)


async def test_unreachable_redis_names_the_url_without_its_password() -> None:
    """A Redis that cannot be reached gives one line with the URL, password removed."""
    url = "redis://admin:hunter2secret@127.0.0.1:1/0"
    with pytest.raises(RedisUnavailableError) as caught:
        await connect(url)
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "hunter2secret" not in message
    assert "\n" not in message
