"""Connecting to Redis: one client per process, and errors that name the server without its password."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from storage.defaults import DEFAULT_MAX_CONNECTIONS
from storage.embedded import EmbeddedRedis, find_server_binary

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
# Commands block at most this long; long enough for a busy server, short enough to notice a dead one.
COMMAND_TIMEOUT_S = 10.0
HEALTH_CHECK_INTERVAL_S = 30
# A command that meets a broken or refused connection is sent again on a new one for about 3 s (at most 5.5 s):
# long enough to ride out a Redis restart or failover, short enough to fail fast when Redis is really gone.
# Timeouts are not retried (a hung server would hold every command 10 s per attempt). Sending a script again is
# safe: each transition is fenced or idempotent, so running it twice is never worse than failing. A create sent
# again is answered as created (its jid is new per submit); a fenced transition sent again after it went through is
# refused as a lost lease, so its job waits out that lease and is picked up again.
RECONNECT_RETRIES = 8
RECONNECT_BACKOFF_BASE_S = 0.1
RECONNECT_BACKOFF_CAP_S = 1.0
# How long a command waits for a free connection. Every command holds one for at most COMMAND_TIMEOUT_S (plus its
# reconnects), so a longer wait means Redis itself is stuck; the command then fails like one that timed out.
POOL_TIMEOUT_S = 20.0


class RedisUnavailableError(Exception):
    """Redis could not be reached; the message names the URL with any password removed."""


def redact_url(url: str) -> str:
    """The URL with any user name and password replaced, safe to log or show."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def create_client(
    url: str, *, reconnect: bool = True, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> aioredis.Redis:
    """A client for `url` (redis://, rediss:// or unix://) with bounded connect and command timeouts that, with
    `reconnect`, rides out a short outage; at most `max_connections` connections, for which commands wait their turn.
    """
    backoff = ExponentialWithJitterBackoff(base=RECONNECT_BACKOFF_BASE_S, cap=RECONNECT_BACKOFF_CAP_S)
    # redis-py's default pool raises MaxConnectionsError when full; the blocking pool waits for a free connection.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        decode_responses=False,
        retry=Retry(backoff, RECONNECT_RETRIES if reconnect else 0, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)


async def connect(url: str, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> aioredis.Redis:
    """Create a client and check with PING that the server answers.

    The check does not retry: a wrong URL, or a server that is down, is reported at once.
    """
    try:
        client = create_client(url, max_connections=max_connections)
        probe = create_client(url, reconnect=False, max_connections=1)
    except ValueError as exc:
        raise RedisUnavailableError(f"REDIS_URL {redact_url(url)} is not a valid Redis URL: {exc}") from None
    try:
        await probe.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = _first_line(exc)
        password = urlsplit(url).password
        if password:
            reason = reason.replace(password, "***")
        raise RedisUnavailableError(f"Cannot reach Redis at {redact_url(url)}: {reason}") from None
    finally:
        await probe.aclose()
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@asynccontextmanager
async def open_redis(
    url: str | None,
    *,
    data_dir: Path,
    server_bin: Path | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> AsyncIterator[aioredis.Redis]:
    """A connected client: to `url` when given, otherwise to an embedded server under `data_dir`; at most
    `max_connections` connections at once.

    The embedded server is stopped (flushing its append-only file) when the context exits.
    """
    embedded: EmbeddedRedis | None = None
    if url is None:
        embedded = EmbeddedRedis(data_dir=data_dir, binary=server_bin or find_server_binary())
        await embedded.start()
        log.info(
            "Single-machine mode: embedded Redis on %s with append-only persistence in %s. "
            "Set REDIS_URL to use an external Redis in production.",
            embedded.socket_path,
            data_dir,
        )
        url = embedded.url
    try:
        client = await connect(url, max_connections=max_connections)
        try:
            yield client
        finally:
            await client.aclose()
    finally:
        if embedded is not None:
            await embedded.stop()
