"""A client for RunPod's local worker server: `python handler.py --rp_serve_api`, the `runpod` package's FastAPI app
(`runpod/serverless/modules/rp_fastapi.py`), which worker authors use to try a worker before deploying it.

That server is not RunPod's API, and this client says so where it differs instead of failing in the dark:
- its routes have no `/v2/{endpoint_id}` prefix and take no key: `POST /run`, `POST /runsync`, `POST /status/{id}`,
  `POST /stream/{id}` (a GET is answered 405), and nothing else: `cancel`, `health`, `purge_queue` and `retry`
  raise `NotSupportedError` without sending anything;
- `/run` only stores the job (its id is `test-<uuid>`, its status IN_PROGRESS). The job RUNS during the first
  `/status` request, whose reply (COMPLETED with the output, or FAILED with the handler's error) comes when the
  handler returns; the server then forgets the job, and any later `/status` is answered `{"status": "FAILED",
  "error": "Job ID not found"}`, which this client raises as `ResultLostError`. So a status request may last as long
  as the job: its read deadline is `run_timeout_s`;
- `/runsync` ignores `wait` and always runs the job to its end;
- its webhook posts only `{"output": ...}`, and only when the job runs (at that first `/status`), so this client
  sends no webhook, and no policy (the server reads neither ttl nor execution timeout).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import aiohttp
import yarl

from runpod_client.client import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_RUNSYNC_WAIT_MS,
    DEFAULT_TIMEOUT,
    DEFAULT_TIMEOUT_S,
    ResponseHook,
    RunPodClient,
)
from runpod_client.errors import NotSupportedError, ResultLostError
from runpod_client.models import Health, Job, JobStatus, Policy, PurgeResult, StreamResult
from runpod_client.retries import RetryPolicy

LOCAL_WORKER_SERVER = "RunPod's local worker server"
# Every key of a local worker starts with this; models.toml refuses an endpoint_id that does.
LOCAL_KEY_PREFIX = "local-"
# How long a job may run on a local worker by default: RunPod's default execution timeout.
DEFAULT_RUN_TIMEOUT_S = 600.0
# What the server answers to /status and /stream for a job it does not (or no longer) know.
JOB_NOT_FOUND = "Job ID not found"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def local_worker_key(url: str) -> str:
    """The stable id that stands for a local worker server wherever an endpoint id is used (Redis keys, the
    clients): `local-<host>-<port>`, plus a hash of the path when the URL has one. Never a RunPod endpoint id."""
    parts = urlsplit(url)
    host = _KEY_UNSAFE.sub("-", parts.hostname or "host").strip("-") or "host"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = f"{LOCAL_KEY_PREFIX}{host}-{port}"
    path = parts.path.rstrip("/")
    if path:
        key += "-" + hashlib.sha256(path.encode()).hexdigest()[:8]
    return key


class LocalWorkerClient(RunPodClient):
    """The `RunPodClient` interface over RunPod's local worker server at `url` (see the module's notes).

    `run_timeout_s` bounds how long a job may run: a `/status` or `/runsync` request waits that long (plus the usual
    timeout) for its reply.
    """

    runs_job_on_status = True

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        key: str | None = None,
        run_timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        on_response: ResponseHook | None = None,
    ) -> None:
        super().__init__(
            session,
            key or local_worker_key(url),
            "",
            base_url=url,
            timeout=timeout,
            retry=retry,
            on_response=on_response,
        )
        # No key: the server has no authentication, and the bot's RunPod key must not leave for another host.
        self._headers = {"Accept": "application/json"}
        self._run_timeout = aiohttp.ClientTimeout(
            total=run_timeout_s + DEFAULT_TIMEOUT_S, sock_connect=timeout.sock_connect or DEFAULT_CONNECT_TIMEOUT_S
        )

    def __repr__(self) -> str:
        return f"LocalWorkerClient(url={self.base_url!r}, key={self.endpoint_id!r})"

    @property
    def status_timeout_s(self) -> float | None:
        return self._run_timeout.total

    async def run(self, input: Mapping[str, Any], webhook: str | None = None, policy: Policy | None = None) -> Job:
        """Store a job (POST /run); it runs at its first `status`. `webhook` and `policy` are not sent (see above)."""
        data = await self._call("run", "POST", ("run",), payload={"input": dict(input)}, may_duplicate=True)
        return self._parse(Job, data, "run")

    async def run_sync(
        self,
        input: Mapping[str, Any],
        wait_ms: int = DEFAULT_RUNSYNC_WAIT_MS,
        *,
        webhook: str | None = None,
        policy: Policy | None = None,
    ) -> Job:
        """Run a job to its end and return it finished (POST /runsync): the server ignores `wait_ms`."""
        data = await self._call(
            "runsync", "POST", ("runsync",), payload={"input": dict(input)}, client_timeout=self._run_timeout,
            may_duplicate=True,
        )  # fmt: skip
        return self._parse(Job, data, "runsync")

    async def status(self, job_id: str, *, ttl_ms: int | None = None) -> Job:
        """Run the job and return it finished (POST /status), the first time; then `ResultLostError`.

        Not retried after a reply may have been lost: the job ran, and a second request finds nothing.
        """
        data = await self._call(
            "status", "POST", ("status", job_id), client_timeout=self._run_timeout, may_duplicate=True
        )
        job = self._parse(Job, data, "status")
        if job.status is JobStatus.FAILED and job.error == JOB_NOT_FOUND:
            raise ResultLostError(job_id, data)
        return job

    async def stream(self, job_id: str) -> StreamResult:
        """Run a generator handler's job and return everything it yielded (POST /stream), the first time."""
        data = await self._call(
            "stream", "POST", ("stream", job_id), client_timeout=self._run_timeout, may_duplicate=True
        )
        if isinstance(data, dict) and data.get("error") == JOB_NOT_FOUND:
            raise ResultLostError(job_id, data, operation="stream")
        return self._parse(StreamResult, data, "stream")

    async def cancel(self, job_id: str) -> Job:
        self._unsupported("cancel")

    async def retry(self, job_id: str) -> Job:
        self._unsupported("retry")

    async def purge_queue(self) -> PurgeResult:
        self._unsupported("purge-queue")

    async def health(self) -> Health:
        self._unsupported("health")

    def _unsupported(self, operation: str) -> NoReturn:
        raise NotSupportedError(operation, LOCAL_WORKER_SERVER)

    def _url(self, path: tuple[str, ...]) -> yarl.URL:
        segments = "/".join(quote(part, safe="") for part in path)
        return yarl.URL(f"{self.base_url}/{segments}", encoded=True)
