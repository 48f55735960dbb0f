"""RunPod webhooks: a per-job URL carrying a secret token, and what receiving one does (no HTTP, no Discord here).

RunPod POSTs the finished job object to the `webhook` URL given on `/run`, with no signature, so the URL itself
carries the proof: an HMAC of the endpoint and job ids under a server secret, checked in constant time. Every
process that shares the secret accepts every job's webhook, whichever process submitted it.

Receiving a finished job either finishes it here, from the payload (no `/status` call; the job's lease is taken so
a poller busy with it cannot commit), or, in a process without a poller, makes the job due at once for whichever
poller comes first. A job still submitting is due as soon as its RunPod id is stored; a job already finishing is
left to its delivery. Polling stays as a slow safety net for webhooks that never arrive.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from pydantic import ValidationError

from runpod_client import Job
from storage.models import TrackedJob
from storage.store import Claimed, JobStore

log = logging.getLogger(__name__)

# aiohttp route of the receiver; the URL RunPod calls is the public base URL followed by this path.
WEBHOOK_ROUTE = "/runpod/webhook/{endpoint_id}/{jid}"
TOKEN_PARAM = "token"
# 128 bits of HMAC-SHA256: far beyond guessing, short enough for a URL.
TOKEN_HEX_CHARS = 32
SECRET_LABEL = b"runpod-bot webhook secret v1"
# How long this process holds a job it finishes from a webhook (extracting the images and recording the outcome).
DEFAULT_TAKE_LEASE_MS = 30_000


def derive_secret(api_key: str) -> bytes:
    """A webhook secret derived from the RunPod API key (when no secret is configured): stable across restarts
    and the same in every process that uses the key, and it does not reveal the key."""
    if not api_key:
        raise ValueError("an empty API key cannot protect webhooks")
    return hmac.new(api_key.encode(), SECRET_LABEL, hashlib.sha256).digest()


class WebhookSigner:
    """Builds each job's webhook URL and checks the token of an incoming one."""

    def __init__(self, secret: bytes | str, public_url: str) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if not key:
            raise ValueError("the webhook secret is empty")
        if not public_url.startswith(("http://", "https://")):
            raise ValueError(f"the webhook base URL must be http(s): {public_url!r}")
        self._key = key
        self.public_url = public_url.rstrip("/")

    def token(self, endpoint_id: str, jid: str) -> str:
        message = f"{endpoint_id}\n{jid}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:TOKEN_HEX_CHARS]

    def url(self, endpoint_id: str, jid: str) -> str:
        path = WEBHOOK_ROUTE.format(endpoint_id=quote(endpoint_id, safe=""), jid=quote(jid, safe=""))
        return f"{self.public_url}{path}?{urlencode({TOKEN_PARAM: self.token(endpoint_id, jid)})}"

    def url_for(self, job: TrackedJob) -> str:
        """The job's webhook URL (`JobService(webhook_for=signer.url_for)`)."""
        return self.url(job.endpoint_id, job.jid)

    def verify(self, endpoint_id: str, jid: str, token: str) -> bool:
        """Whether `token` is the job's; the comparison takes the same time whatever the token holds."""
        expected = self.token(endpoint_id, jid).encode()
        return hmac.compare_digest(expected, token.encode("utf-8", "replace"))


class Finisher(Protocol):
    """What finishes jobs in this process (the `Poller`)."""

    def adopt(self, claim: Claimed, status: Job) -> None: ...

    def wake(self) -> None: ...


class WebhookOutcome(StrEnum):
    """What receiving a webhook did."""

    FINISHING = "finishing"  # this process finishes the job from the payload
    DUE = "due"  # the job is due at once: a poller checks its /status
    PENDING = "pending"  # still submitting: due at once when its RunPod id is stored
    IGNORED = "ignored"  # already finishing or delivered, or no longer known


class InvalidWebhookError(ValueError):
    """The payload is not a RunPod job object."""


class WebhookReceiver:
    """Acts on RunPod's POSTed job objects. `finisher` (this process's poller) finishes jobs from the payload;
    without one, jobs are made due for the pollers of other processes."""

    def __init__(
        self,
        store: JobStore,
        signer: WebhookSigner,
        *,
        finisher: Finisher | None = None,
        lease_ms: int = DEFAULT_TAKE_LEASE_MS,
    ) -> None:
        self.store = store
        self.signer = signer
        self.finisher = finisher
        self.lease_ms = lease_ms

    def authentic(self, endpoint_id: str, jid: str, token: str) -> bool:
        return self.signer.verify(endpoint_id, jid, token)

    async def receive(self, endpoint_id: str, jid: str, payload: Any) -> WebhookOutcome:
        """Finish the job from `payload` or make it due; raises `InvalidWebhookError` for a payload that is no job.

        Call only after `authentic` accepted the token.
        """
        try:
            status = Job.model_validate(payload)
        except ValidationError as exc:
            raise InvalidWebhookError(f"not a RunPod job object: {exc.error_count()} problem(s)") from None
        if self.finisher is not None and status.is_terminal:
            taken = await self.store.take_for_webhook(endpoint_id, jid, lease_ms=self.lease_ms)
            if taken.claimed is not None:
                return await self._finish(taken.claimed, status)
            return _outcome(taken.status)
        made = await self.store.make_due_for_webhook(endpoint_id, jid)
        if made.status == "due" and self.finisher is not None:
            self.finisher.wake()
        return _outcome(made.status)

    async def _finish(self, claim: Claimed, status: Job) -> WebhookOutcome:
        if self.finisher is None:  # pragma: no cover - checked by the caller
            raise RuntimeError("no finisher")
        if claim.job.runpod_id is not None and claim.job.runpod_id != status.id:
            # The token was right but the payload names another RunPod job: trust /status instead.
            log.warning("job %s: webhook for RunPod job %s, expected %s", claim.job.jid, status.id, claim.job.runpod_id)
            await self.store.release([claim])
            self.finisher.wake()
            return WebhookOutcome.DUE
        log.debug("job %s: webhook says %s", claim.job.jid, status.status.value)
        self.finisher.adopt(claim, status)
        return WebhookOutcome.FINISHING


def _outcome(status: str) -> WebhookOutcome:
    if status == "due":
        return WebhookOutcome.DUE
    if status == "submitting":
        return WebhookOutcome.PENDING
    return WebhookOutcome.IGNORED
