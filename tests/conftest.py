"""Shared fixtures: a real Redis-compatible server for the whole session, flushed before every test that uses it.

The suite runs on several pytest-xdist workers (`make pytest`), each a session of its own: each worker starts its
own embedded Redis, emulators and fake Discord on free ports and temporary directories; against one shared
`REDIS_URL`, each worker takes a database of its own (`worker_database`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis.asyncio as aioredis

from storage.connection import create_client
from storage.embedded import EmbeddedRedis

# Fixtures for the fakes of the outside world live in their own modules.
pytest_plugins = ["tests.plugins.emulator", "tests.plugins.fake_discord", "tests.plugins.local_workers"]

# Session fixtures that start many processes: the tests using them share one xdist worker (`--dist loadgroup`), so
# the processes start once per run instead of once per worker (nine worker-SDK servers cost seconds of CPU).
GROUPED_FIXTURES = ("local_workers", "fake_discord_process")
# pytest-xdist names its workers gw0, gw1, ...; the variable is unset in a run without workers.
XDIST_WORKER_VARIABLE = "PYTEST_XDIST_WORKER"


def pytest_configure(config: pytest.Config) -> None:
    # `make pytest` runs the `serial` tests after the others, alone, in one process.
    config.addinivalue_line(
        "markers",
        "serial: needs the CPU to itself (a burst, or a deadline of a second or two): runs after the parallel tests",
    )
    # Declared here too, so --strict-markers accepts it when xdist is disabled (`-p no:xdist`).
    config.addinivalue_line("markers", "xdist_group(name): run in the same xdist worker as the group's other tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in GROUPED_FIXTURES:
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(fixture))
                break


def worker_database(url: str) -> str:
    """`url` with a database of this xdist worker's own, after the URL's, so workers never flush each other's data.

    The URL's own database is left to the chaos smoke test, which reads `REDIS_URL` itself (under a key prefix).
    """
    worker = os.environ.get(XDIST_WORKER_VARIABLE, "")
    if not worker.startswith("gw"):
        return url
    address, _, query_string = url.partition("?")
    parts = urlsplit(address)
    query = parse_qs(query_string)
    # redis-py reads the database from `?db=` first, then from the path of a redis:// URL (a unix:// path is the
    # socket's), so the worker's database goes into the query.
    path_db = parts.path.strip("/") if parts.scheme in ("redis", "rediss") else ""
    base = int(query.get("db", [path_db or "0"])[0])
    query["db"] = [str(base + 1 + int(worker.removeprefix("gw")))]
    return f"{address}?{urlencode(query, doseq=True)}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`REDIS_URL` when set (CI against a real Redis), otherwise a private embedded server for this session."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield worker_database(external)
        return
    # A short directory under /tmp: unix socket paths are limited to about 100 characters.
    with tempfile.TemporaryDirectory(prefix="rpb-test-") as directory:
        server = EmbeddedRedis(data_dir=Path(directory))
        asyncio.run(server.start())
        try:
            yield server.url
        finally:
            asyncio.run(server.stop())


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on the session's server, whose database is empty when the test starts."""
    client = create_client(redis_url)
    # Only this worker's database: other workers may share the server.
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
