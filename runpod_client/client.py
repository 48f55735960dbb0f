"""The async RunPod client: one method per operation of the job API, over a shared aiohttp session."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import yarl
from pydantic import BaseModel, ValidationError

from runpod_client.errors import (
    InvalidResponseError,
    RateLimitedError,
    RunPodConnectionError,
    RunPodError,
    RunPodTimeoutError,
    api_error,
)
from runpod_client.models import Health, Job, Policy, PurgeResult, StreamResult
from runpod_client.retries import RetryPolicy, parse_retry_after, should_retry

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=DEFAULT_TIMEOUT_S, sock_connect=DEFAULT_CONNECT_TIMEOUT_S)
DEFAULT_RUNSYNC_WAIT_MS = 90_000
MIN_RUNSYNC_WAIT_MS = 1_000
MAX_RUNSYNC_WAIT_MS = 300_000
REDACTED = "[REDACTED]"
UNSHOWABLE_BODY = "(a reply that cannot be shown)"
STATUS_OK_MIN = 200
STATUS_OK_MAX = 299
# Reply bodies at least this large are parsed in a worker thread.
PARSE_IN_THREAD_BYTES = 256 * 1024

ModelT = TypeVar("ModelT", bound=BaseModel)
# Told (operation, outcome) after every HTTP attempt: the status code as text, "timeout" or "error" (metrics).
ResponseHook = Callable[[str, str], None]


class RunPodClient:
    """A typed client for one Serverless endpoint's job API.

    Every method retries transient failures under the retry policy, except that /run and /runsync are sent again
    only when RunPod certainly did not take them (a 429, or a connection that never opened): a second send after a
    timeout or a reset could start a second paid GPU job.
    """

    # Whether a job starts only when its status is first asked for (RunPod's local worker server), not at /run.
    runs_job_on_status = False

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint_id: str,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        if not endpoint_id:
            raise ValueError("endpoint_id is empty")
        self._session = session
        self._endpoint_id = endpoint_id
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._retry_policy = retry or RetryPolicy()
        self._on_response = on_response
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    def __repr__(self) -> str:
        return f"RunPodClient(endpoint_id={self._endpoint_id!r}, base_url={self._base_url!r})"

    @property
    def endpoint_id(self) -> str:
        return self._endpoint_id

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def status_timeout_s(self) -> float | None:
        """The longest a `status` call may take (None: no limit), so a caller can hold its job that long."""
        return self._timeout.total

    async def run(self, input: Mapping[str, Any], webhook: str | None = None, policy: Policy | None = None) -> Job:
        """Queue a job (POST /run); the reply holds its id and IN_QUEUE."""
        body = _job_body(input, webhook, policy)
        data = await self._call("run", "POST", ("run",), payload=body, may_duplicate=True)
        return self._parse(Job, data, "run")

    async def run_sync(
        self,
        input: Mapping[str, Any],
        wait_ms: int = DEFAULT_RUNSYNC_WAIT_MS,
        *,
        webhook: str | None = None,
        policy: Policy | None = None,
    ) -> Job:
        """Run a job and wait up to `wait_ms` for it (POST /runsync).

        A job that finished in time comes back whole; otherwise the reply is its id (`sync-…`) and live state, and
        the caller polls `status`.
        """
        if not MIN_RUNSYNC_WAIT_MS <= wait_ms <= MAX_RUNSYNC_WAIT_MS:
            raise ValueError(f"wait_ms must be between {MIN_RUNSYNC_WAIT_MS} and {MAX_RUNSYNC_WAIT_MS}")
        body = _job_body(input, webhook, policy)
        # RunPod holds the reply for up to `wait_ms`: the read deadline must cover it.
        timeout = aiohttp.ClientTimeout(
            total=None if self._timeout.total is None else self._timeout.total + wait_ms / 1000,
            connect=self._timeout.connect,
            sock_connect=self._timeout.sock_connect,
            sock_read=None if self._timeout.sock_read is None else self._timeout.sock_read + wait_ms / 1000,
        )
        data = await self._call(
            "runsync", "POST", ("runsync",), payload=body, params={"wait": str(wait_ms)}, client_timeout=timeout,
            may_duplicate=True,
        )  # fmt: skip
        return self._parse(Job, data, "runsync")

    async def status(self, job_id: str, *, ttl_ms: int | None = None) -> Job:
        """The job's current state and, once finished, its output or error (GET /status).

        `ttl_ms` asks RunPod to keep the result that long from now. A 404 means the job is unknown or expired.
        """
        params = {"ttl": str(ttl_ms)} if ttl_ms is not None else None
        data = await self._call("status", "GET", ("status", job_id), params=params)
        return self._parse(Job, data, "status")

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (POST /cancel). On a finished job RunPod returns its state or a 404."""
        data = await self._call("cancel", "POST", ("cancel", job_id))
        return self._parse(Job, data, "cancel")

    async def retry(self, job_id: str) -> Job:
        """Queue a FAILED or TIMED_OUT job again under the same id (POST /retry)."""
        data = await self._call("retry", "POST", ("retry", job_id))
        return self._parse(Job, data, "retry")

    async def purge_queue(self) -> PurgeResult:
        """Remove every queued job; running jobs continue (POST /purge-queue)."""
        data = await self._call("purge-queue", "POST", ("purge-queue",))
        return self._parse(PurgeResult, data, "purge-queue")

    async def health(self) -> Health:
        """Job and worker counts of the endpoint (GET /health)."""
        data = await self._call("health", "GET", ("health",))
        return self._parse(Health, data, "health")

    async def stream(self, job_id: str) -> StreamResult:
        """The outputs a streaming job produced since the last call (GET /stream)."""
        data = await self._call("stream", "GET", ("stream", job_id))
        return self._parse(StreamResult, data, "stream")

    async def _call(
        self,
        operation: str,
        method: str,
        path: tuple[str, ...],
        *,
        payload: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
        may_duplicate: bool = False,
    ) -> Any:
        policy = self._retry_policy
        attempt = 1
        while True:
            try:
                return await self._send(operation, method, path, payload, params, client_timeout or self._timeout)
            except RunPodError as exc:
                if attempt >= policy.max_attempts or not should_retry(exc, may_duplicate=may_duplicate):
                    raise
                retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
                delay = policy.delay(attempt, retry_after)
                log.warning(
                    "RunPod %s attempt %d/%d failed (%s); retrying in %.2f s",
                    operation,
                    attempt,
                    policy.max_attempts,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                attempt += 1

    async def _send(
        self,
        operation: str,
        method: str,
        path: tuple[str, ...],
        payload: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        client_timeout: aiohttp.ClientTimeout,
    ) -> Any:
        """One HTTP exchange; every attempt, failed or not, is reported to the `on_response` hook."""
        outcome = "error"
        try:
            status, raw, retry_after = await self._exchange(operation, method, path, payload, params, client_timeout)
            outcome = str(status)
        except RunPodTimeoutError:
            outcome = "timeout"
            raise
        finally:
            if self._on_response is not None:
                self._on_response(operation, outcome)
        if len(raw) >= PARSE_IN_THREAD_BYTES:
            # A finished job's output can hold megabytes of base64: parse it off the event loop.
            body = await asyncio.to_thread(_decode, raw)
        else:
            body = _decode(raw)
        if not STATUS_OK_MIN <= status <= STATUS_OK_MAX:
            raise api_error(status, self._redacted(body), operation=operation, retry_after=retry_after)
        if not isinstance(body, dict):
            raise InvalidResponseError(status, self._redacted(body), operation=operation)
        log.debug("RunPod %s: HTTP %s", operation, status)
        return body

    async def _exchange(
        self,
        operation: str,
        method: str,
        path: tuple[str, ...],
        payload: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        client_timeout: aiohttp.ClientTimeout,
    ) -> tuple[int, bytes, float | None]:
        """Send the request and read the whole reply: (status, body, Retry-After); transport failures raised."""
        url = self._url(path)
        try:
            async with self._session.request(
                method,
                url,
                json=payload,
                params=params,
                headers=self._headers,
                timeout=client_timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except aiohttp.ClientConnectorError as exc:
            # Raised while opening the connection (refused, DNS failure, TLS setup): nothing was sent.
            raise RunPodConnectionError(
                f"RunPod {operation}: cannot connect to {url.host}: {self._redact(str(exc.os_error))}",
                operation=operation,
                maybe_sent=False,
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise RunPodTimeoutError(
                f"RunPod {operation}: connecting to {url.host} timed out", operation=operation, maybe_sent=False
            ) from exc
        except TimeoutError as exc:
            raise RunPodTimeoutError(
                f"RunPod {operation}: no reply from {url.host} in time", operation=operation, maybe_sent=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise RunPodConnectionError(
                f"RunPod {operation}: connection to {url.host} failed: {self._redact(str(exc)) or type(exc).__name__}",
                operation=operation,
                maybe_sent=True,
            ) from exc
        return status, raw, retry_after

    def _url(self, path: tuple[str, ...]) -> yarl.URL:
        segments = "/".join(quote(part, safe="") for part in (self._endpoint_id, *path))
        return yarl.URL(f"{self._base_url}/{segments}", encoded=True)

    def _redact(self, text: str) -> str:
        # A misbehaving proxy or server could echo the key back; it must not reach a message or a log.
        return text.replace(self._api_key, REDACTED) if self._api_key else text

    def _redacted(self, body: Any) -> Any:
        """A reply body about to go into an error (its message and its `body`), with the key replaced.

        Only errors are redacted: the data of a good reply is returned as RunPod sent it, since a key's text can
        occur by chance inside base64 image data, which a replacement would corrupt.
        """
        if isinstance(body, str):
            return self._redact(body)
        try:
            text = json.dumps(body)
        except (TypeError, ValueError, RecursionError):
            return UNSHOWABLE_BODY
        redacted = self._redact(text)
        return body if redacted == text else json.loads(redacted)

    def _parse(self, model: type[ModelT], data: Any, operation: str) -> ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise InvalidResponseError(200, self._redacted(data), operation=operation) from exc


def _job_body(input: Mapping[str, Any], webhook: str | None, policy: Policy | None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": dict(input)}
    if webhook is not None:
        body["webhook"] = webhook
    if policy is not None:
        policy_body = policy.to_api()
        if policy_body:
            body["policy"] = policy_body
    return body


def _decode(raw: bytes) -> Any:
    """The reply body as JSON, or as text when it is not JSON (or nests too deep for the parser)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text
