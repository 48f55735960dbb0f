"""The emulator's HTTP side: RunPod's job API under `/v2/{endpoint_id}/`, and the control API under `/_emulator/`."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from runpod_emulator.config import OPERATIONS, EmulatorConfig, FaultKind, Scenario
from runpod_emulator.engine import LIVE_STATES, Counters, Engine, InvalidRequest
from runpod_emulator.personalities import PERSONALITIES

API_PREFIX = "/v2"
CONTROL_PREFIX = "/_emulator"
# RunPod's payload limits.
MAX_RUN_BYTES = 10 * 1024 * 1024
MAX_RUNSYNC_BYTES = 20 * 1024 * 1024
# aiohttp refuses bodies over this by itself (413), above RunPod's largest limit so ours answer first.
CLIENT_MAX_SIZE = MAX_RUNSYNC_BYTES + 1024 * 1024
DEFAULT_RUNSYNC_WAIT_MS = 90_000
MIN_RUNSYNC_WAIT_MS = 1_000
MAX_RUNSYNC_WAIT_MS = 300_000
# In-flight requests (slow replies, /runsync waits) are cut short this quickly when the emulator stops.
SHUTDOWN_TIMEOUT_S = 0.5
ENDPOINT_NOT_FOUND_TEXT = "404 page not found"
JOB_NOT_FOUND = "request does not exist"
RATE_LIMITED_TEXT = "429 Too Many Requests"
GARBLED_TEXT = "<html><body><h1>Service temporarily unavailable</h1></body></html>"
ACCESS_LOGGER = "aiohttp.access"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP reset, so the client never sees the reply."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 turns the close into an RST, as a crashed proxy would send.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class EmulatorServer:
    """Builds the aiohttp application around an engine."""

    def __init__(self, config: EmulatorConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self._key = config.api_key.encode()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        base = f"{API_PREFIX}/{{endpoint_id}}"
        routes = [
            ("POST", "/run", "run", self.run),
            ("POST", "/runsync", "runsync", self.runsync),
            ("GET", "/status/{job_id}", "status", self.status),
            ("POST", "/status/{job_id}", "status", self.status),
            ("GET", "/stream/{job_id}", "stream", self.stream),
            ("POST", "/stream/{job_id}", "stream", self.stream),
            ("POST", "/cancel/{job_id}", "cancel", self.cancel),
            ("POST", "/retry/{job_id}", "retry", self.retry),
            ("POST", "/purge-queue", "purge-queue", self.purge_queue),
            ("GET", "/health", "health", self.health),
        ]
        for method, path, operation, handler in routes:
            app.router.add_route(method, base + path, self._api(operation, handler))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.unknown_path)
        control = [
            ("GET", "/scenario", self.get_scenario),
            ("PUT", "/scenario", self.put_scenario),
            ("PATCH", "/scenario", self.patch_scenario),
            ("POST", "/faults/{operation}", self.post_faults),
            ("GET", "/counters", self.get_counters),
            ("GET", "/jobs/{job_id}", self.get_job),
            ("POST", "/reset", self.post_reset),
            ("GET", "/personalities", self.get_personalities),
            ("GET", "/files/{name}", self.get_file),
        ]
        for method, path, handler in control:
            app.router.add_route(method, CONTROL_PREFIX + path, handler)
        return app

    # ----- the job API -----

    def _api(self, operation: str, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            # A request counts in the counters it started under, even if they are reset while it is in flight.
            counters = self.engine.counters
            counters.record_arrival(operation)
            label = "error"
            try:
                response, label = await self._guarded(operation, request, handler)
                return response
            except web.HTTPException as exc:
                label = str(exc.status)
                raise
            finally:
                counters.record_request(operation, label)

        return wrapped

    async def _guarded(self, operation: str, request: web.Request, handler: Handler) -> tuple[web.StreamResponse, str]:
        """Auth, endpoint, rate limit and injected fault, in RunPod's order, around the operation itself."""
        self.engine.sweep()
        if not self._authorized(request):
            return _error(401, "Unauthorized"), "401"
        if request.match_info["endpoint_id"] != self.config.endpoint_id:
            # Unknown endpoints were seen answering with a non-JSON body.
            return web.Response(status=404, text=ENDPOINT_NOT_FOUND_TEXT), "404"
        wait_s = self.engine.admit(operation)
        if wait_s is not None:
            return _error(429, "rate limit exceeded", headers=_retry_after(wait_s)), "429"
        with self.engine.in_flight(operation):
            fault = self.engine.next_fault(operation)
            scenario = self.engine.scenario
            if fault == FaultKind.SERVER_ERROR:
                return _error(500, "internal server error"), "500"
            if fault == FaultKind.RATE_LIMITED:
                # Some of RunPod's 429s carry a plain-text body.
                headers = {"Retry-After": str(scenario.fault_retry_after_s)}
                return web.Response(status=429, text=RATE_LIMITED_TEXT, headers=headers), "429"
            if fault == FaultKind.BAD_REQUEST:
                return _error(400, "bad request"), "400"
            if fault == FaultKind.FORBIDDEN:
                return _error(403, "Forbidden"), "403"
            if fault == FaultKind.GARBLED:
                return web.Response(status=200, text=GARBLED_TEXT, content_type="text/html"), "garbled"
            response = await handler(request)
            if fault == FaultKind.SLOW:
                await asyncio.sleep(scenario.slow_reply_s)
            if fault == FaultKind.RESET:
                _reset_connection(request)
                return response, "reset"
            return response, str(response.status)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "").strip()
        # RunPod takes `Bearer <key>`, and some of its documentation sends the bare key.
        token = header[7:].strip() if header[:7].lower() == "bearer " else header
        return hmac.compare_digest(token.encode(), self._key)

    async def _body(self, request: web.Request, limit: int) -> Any:
        raw = await request.read()
        if len(raw) > limit:
            raise _PayloadTooLarge(limit)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise InvalidRequest("the body is not valid JSON") from None

    async def run(self, request: web.Request) -> web.StreamResponse:
        try:
            job = self.engine.submit(await self._body(request, MAX_RUN_BYTES), sync=False)
        except _PayloadTooLarge as exc:
            return _error(413, str(exc))
        except InvalidRequest as exc:
            return _error(400, str(exc))
        return web.json_response({"id": job.id, "status": job.status})

    async def runsync(self, request: web.Request) -> web.StreamResponse:
        try:
            wait_ms = self._wait_ms(request)
            job = self.engine.submit(await self._body(request, MAX_RUNSYNC_BYTES), sync=True)
        except _PayloadTooLarge as exc:
            return _error(413, str(exc))
        except InvalidRequest as exc:
            return _error(400, str(exc))
        await self.engine.wait_finished(job, wait_ms / 1000)
        if job.status in LIVE_STATES:
            return web.json_response({"id": job.id, "status": job.status})
        return web.json_response(job.view())

    def _wait_ms(self, request: web.Request) -> float:
        raw = request.query.get("wait")
        if raw is None:
            return DEFAULT_RUNSYNC_WAIT_MS
        try:
            wait_ms = float(raw)
        except ValueError:
            raise InvalidRequest("wait must be a number of milliseconds") from None
        strict = self.engine.scenario.strict_limits
        if (strict and not MIN_RUNSYNC_WAIT_MS <= wait_ms <= MAX_RUNSYNC_WAIT_MS) or wait_ms < 0:
            raise InvalidRequest(f"wait must be between {MIN_RUNSYNC_WAIT_MS} and {MAX_RUNSYNC_WAIT_MS} ms")
        return wait_ms

    async def status(self, request: web.Request) -> web.StreamResponse:
        job = self.engine.find(request.match_info["job_id"])
        if job is None:
            return _error(404, JOB_NOT_FOUND)
        ttl_raw = request.query.get("ttl")
        try:
            ttl_ms = float(ttl_raw) if ttl_raw is not None else None
        except ValueError:
            return _error(400, "ttl must be a number of milliseconds")
        return web.json_response(self.engine.status_view(job, ttl_ms))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        job = self.engine.find(request.match_info["job_id"])
        if job is None:
            return _error(404, JOB_NOT_FOUND)
        return web.json_response(self.engine.stream_view(job))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        job = self.engine.find(request.match_info["job_id"])
        if job is None:
            return _error(404, JOB_NOT_FOUND)
        self.engine.cancel(job)
        return web.json_response({"id": job.id, "status": job.status})

    async def retry(self, request: web.Request) -> web.StreamResponse:
        job = self.engine.find(request.match_info["job_id"])
        if job is None:
            return _error(404, JOB_NOT_FOUND)
        try:
            self.engine.retry(job)
        except InvalidRequest as exc:
            return _error(400, str(exc))
        return web.json_response({"id": job.id, "status": job.status})

    async def purge_queue(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"removed": self.engine.purge(), "status": "completed"})

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.engine.health())

    async def unknown_path(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text=ENDPOINT_NOT_FOUND_TEXT)

    # ----- the control API -----

    async def get_scenario(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.engine.scenario.model_dump(mode="json"))

    async def put_scenario(self, request: web.Request) -> web.StreamResponse:
        return await self._set_scenario(request, merge=False)

    async def patch_scenario(self, request: web.Request) -> web.StreamResponse:
        return await self._set_scenario(request, merge=True)

    async def _set_scenario(self, request: web.Request, *, merge: bool) -> web.StreamResponse:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                return _error(400, "the scenario must be a JSON object")
            base = self.engine.scenario.model_dump(mode="json") if merge else {}
            scenario = Scenario.model_validate({**base, **changes})
        except ValueError as exc:
            return _error(400, _validation_message(exc))
        self.engine.set_scenario(scenario)
        return web.json_response(scenario.model_dump(mode="json"))

    async def post_faults(self, request: web.Request) -> web.StreamResponse:
        operation = request.match_info["operation"]
        if operation not in OPERATIONS:
            return _error(404, f"unknown operation {operation!r}")
        try:
            body = await request.json()
            kinds = [FaultKind(kind) for kind in body]
        except (ValueError, TypeError) as exc:
            return _error(400, f"expected a JSON list of {', '.join(FaultKind)}: {exc}")
        self.engine.script_faults(operation, kinds)
        return web.json_response({"operation": operation, "scripted": [kind.value for kind in kinds]})

    async def get_counters(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.engine.snapshot())

    async def get_job(self, request: web.Request) -> web.StreamResponse:
        # What /status shows and the input the job was given: an audit ties each job to the request that made it,
        # even a job whose /run reply was lost (so its id is known to no client).
        job = self.engine.job(request.match_info["job_id"])
        if job is None:
            return _error(404, "no such job")
        return web.json_response({**job.view(), "input": job.input})

    async def post_reset(self, request: web.Request) -> web.StreamResponse:
        self.engine.reset()
        return web.json_response({"status": "reset"})

    async def get_personalities(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            [{"name": p.name, "description": p.description, "outcome": p.outcome} for p in PERSONALITIES.values()]
        )

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        data = self.engine.file(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="no such file")
        return web.Response(body=data, content_type="image/png")


class _PayloadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over the {limit // (1024 * 1024)} MB limit")


def _validation_message(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)


class Emulator:
    """A running emulator: its addresses and key, and direct access to its scenario and counters for tests."""

    def __init__(self, config: EmulatorConfig, engine: Engine, url: str) -> None:
        self.config = config
        self.engine = engine
        self.url = url

    @property
    def base_url(self) -> str:
        """The RunPod base URL to give a client (ends in `/v2`)."""
        return self.url + API_PREFIX

    @property
    def endpoint_id(self) -> str:
        return self.config.endpoint_id

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def scenario(self) -> Scenario:
        return self.engine.scenario

    def set_scenario(self, scenario: Scenario) -> None:
        self.engine.set_scenario(scenario)

    def update_scenario(self, **changes: Any) -> Scenario:
        """Change some scenario fields (validated); returns the new scenario."""
        scenario = Scenario.model_validate({**self.engine.scenario.model_dump(), **changes})
        self.engine.set_scenario(scenario)
        return scenario

    def script_faults(self, operation: str, *kinds: FaultKind | str) -> None:
        """Make the next requests to `operation` meet these faults, in order."""
        self.engine.script_faults(operation, [FaultKind(kind) for kind in kinds])

    @property
    def counters(self) -> Counters:
        return self.engine.counters

    def snapshot(self) -> dict[str, Any]:
        """Counters, jobs per state and terminal times, as `/_emulator/counters` returns them."""
        return self.engine.snapshot()

    def job(self, job_id: str) -> dict[str, Any] | None:
        """A job as /status would return it, or None."""
        job = self.engine.job(job_id)
        return job.view() if job is not None else None

    def received_policy(self, job_id: str) -> dict[str, Any] | None:
        """The `policy` object the job's /run carried (`{}` when it had none), or None for an unknown job."""
        job = self.engine.job(job_id)
        return dict(job.policy) if job is not None else None

    def reset(self) -> None:
        self.engine.reset()


def _client_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@asynccontextmanager
async def run_emulator(config: EmulatorConfig | None = None) -> AsyncIterator[Emulator]:
    """Serve an emulator until the block ends; port 0 (the default) picks a free port."""
    config = config or EmulatorConfig()
    engine = Engine(config)
    server = EmulatorServer(config, engine)
    async with AsyncExitStack() as stack:
        await engine.start()
        stack.push_async_callback(engine.stop)
        runner = web.AppRunner(
            server.app(),
            access_log=logging.getLogger(ACCESS_LOGGER) if config.access_log else None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        # Unwound first: stop serving before the engine's tasks are cancelled.
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://{_client_host(config.host)}:{port}"
        engine.public_url = config.public_url.rstrip("/") if config.public_url else url
        yield Emulator(config, engine, url)
