"""The bot's HTTP server: a small aiohttp application built from the parts it serves.

`/healthz` (the process is alive), `/readyz` (Redis answers and, for roles that connect, Discord is ready),
`/metrics` (Prometheus text format) and RunPod's webhook route. Job URLs carry secret tokens, so `serve` runs
without aiohttp's access log (it would write them to the logs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST as METRICS_CONTENT_TYPE
from redis.exceptions import RedisError

from jobs.metrics import Metrics
from jobs.webhooks import WEBHOOK_ROUTE, InvalidWebhookError, WebhookReceiver
from runpod_bot.defaults import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT
from storage.store import JobStore

log = logging.getLogger(__name__)

# A finished job's output can hold several base64 images.
MAX_BODY_BYTES = 50 * 1024 * 1024
# Bodies at least this large are parsed in a worker thread, off the event loop.
PARSE_IN_THREAD_BYTES = 256 * 1024
# Ids from a refused request are logged cut to this length.
LOGGED_ID_CHARS = 64
# A RunPod job object nests a few levels (output → images → image), worker outputs a few more; deeper is no job.
MAX_WEBHOOK_JSON_DEPTH = 64
WEBHOOK_CONTENT_TYPE = "application/json"


# Answers whether the process can do its work: (ready, {check: "ok" or what is wrong}).
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, str]]]]


def create_app(
    *,
    webhooks: WebhookReceiver | None = None,
    readiness: Readiness | None = None,
    metrics: Metrics | None = None,
    store: JobStore | None = None,
) -> web.Application:
    """The application; each part is served only when given (`/healthz` always)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/healthz", healthz)
    if readiness is not None:
        app.router.add_get("/readyz", ReadyHandler(readiness).handle)
    if metrics is not None:
        app.router.add_get("/metrics", MetricsHandler(metrics, store).handle)
    if webhooks is not None:
        app.router.add_post(WEBHOOK_ROUTE, WebhookHandler(webhooks).handle)
    return app


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "alive"})


class ReadyHandler:
    """`GET /readyz`: 200 when every check passes, 503 naming the failing ones."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    async def handle(self, request: web.Request) -> web.Response:
        ready, checks = await self.readiness()
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


class MetricsHandler:
    """`GET /metrics`: the registry, with the shared gauges read from Redis first (skipped if Redis is down)."""

    def __init__(self, metrics: Metrics, store: JobStore | None) -> None:
        self.metrics = metrics
        self.store = store

    async def handle(self, request: web.Request) -> web.Response:
        if self.store is not None:
            try:
                await self.metrics.refresh(self.store)
            except (RedisError, OSError) as exc:
                log.warning("metrics: shared gauges not refreshed, Redis failed: %s", exc)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})


class TooDeepError(ValueError):
    """A JSON body nested deeper than the receiver accepts."""


class WebhookHandler:
    """`POST /runpod/webhook/{endpoint_id}/{jid}?token=…`: 401 for a bad token, 415 for a body that is not
    `application/json`, 400 for a body that is no job (or nested absurdly deep), 503 when the job store is
    unreachable (RunPod then tries again), otherwise 200."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver

    async def handle(self, request: web.Request) -> web.Response:
        endpoint_id, jid = request.match_info["endpoint_id"], request.match_info["jid"]
        if not self.receiver.authentic(endpoint_id, jid, request.query.get("token", "")):
            log.warning(
                "refused a webhook for job %r of endpoint %r from %s: bad token",
                jid[:LOGGED_ID_CHARS],
                endpoint_id[:LOGGED_ID_CHARS],
                request.remote,
            )
            return web.json_response({"error": "bad token"}, status=401)
        if request.content_type != WEBHOOK_CONTENT_TYPE:
            log.warning("job %s: webhook refused: Content-Type %r", jid, request.content_type[:LOGGED_ID_CHARS])
            return web.json_response(
                {"error": f"the body must be a JSON job object sent as {WEBHOOK_CONTENT_TYPE}"}, status=415
            )
        raw = await request.read()
        try:
            payload = await _parse(raw)
        except TooDeepError as exc:
            log.warning("job %s: webhook body refused: %s", jid, exc)
            return web.json_response({"error": str(exc)}, status=400)
        except ValueError as exc:
            log.warning("job %s: webhook body refused: %s", jid, exc)
            return web.json_response({"error": "the body is not a RunPod job object"}, status=400)
        try:
            outcome = await self.receiver.receive(endpoint_id, jid, payload)
        except (ValueError, InvalidWebhookError) as exc:
            log.warning("job %s: webhook body refused: %s", jid, exc)
            return web.json_response({"error": "the body is not a RunPod job object"}, status=400)
        except (RedisError, OSError) as exc:
            log.error("job %s: webhook not recorded, the job store failed: %s", jid, exc)
            return web.json_response({"error": "try again later"}, status=503)
        return web.json_response({"status": outcome.value})


async def _parse(raw: bytes) -> Any:
    if len(raw) >= PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(parse_json, raw, MAX_WEBHOOK_JSON_DEPTH)
    return parse_json(raw, MAX_WEBHOOK_JSON_DEPTH)


def parse_json(raw: bytes, max_depth: int) -> Any:
    """The JSON document in `raw`; `TooDeepError` when arrays and objects nest deeper than `max_depth`, `ValueError`
    when it is not JSON.

    The C parser recurses once per level and stops by itself at the interpreter's recursion limit (a
    `RecursionError`, turned into `TooDeepError` here); the limit is then checked on the parsed value without
    recursion. A scan of the text before parsing would cost more than the parse for a hostile body.
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise TooDeepError(f"the body is nested deeper than {max_depth} levels") from None
    if _nesting_exceeds(value, max_depth):
        raise TooDeepError(f"the body is nested deeper than {max_depth} levels")
    return value


def _nesting_exceeds(value: Any, max_depth: int) -> bool:
    # Depth first with an explicit stack: no recursion, and it stops at the first container too deep.
    pending: list[tuple[dict[str, Any] | list[Any], int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


@asynccontextmanager
async def serve(
    app: web.Application,
    *,
    host: str = DEFAULT_HTTP_HOST,
    port: int = DEFAULT_HTTP_PORT,
    sock: socket.socket | None = None,
) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields the address it listens on (port 0 picks a free one). With `sock`, on
    that bound socket instead: its address is known before the app is built (a webhook URL that names it)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, port)
        await site.start()
        if sock is not None:
            host = str(sock.getsockname()[0])
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        log.info("HTTP server listening on %s:%s", shown_host, bound_port)
        yield f"http://{shown_host}:{bound_port}"
    finally:
        await runner.cleanup()
