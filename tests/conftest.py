"""Shared fixtures: a real Redis-compatible server for the whole session, flushed before every test that uses it."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from storage.connection import create_client
from storage.embedded import EmbeddedRedis

# Fixtures for the fakes of the outside world live in their own modules.
pytest_plugins = ["tests.plugins.emulator", "tests.plugins.fake_discord", "tests.plugins.local_workers"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`REDIS_URL` when set (CI against a real Redis), otherwise a private embedded server for this session."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
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
    """A client on the session's server, which is empty when the test starts."""
    client = create_client(redis_url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()
