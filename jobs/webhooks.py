"""RunPod webhooks: a per-job URL carrying a secret token, and what receiving one does (no HTTP, no Discord here).

RunPod POSTs the finished job object to the `webhook` URL given on `/run`, with no signature, so the URL itself
carries the proof: an HMAC of the endpoint and job ids under a server secret, checked in constant time. Every
process that shares the secret accepts every job's webhook, whichever process submitted it.

Receiving a finished job hands its payload over like any job object in hand (`jobs.handoff`, shared with the
/runsync reply): finished here from the payload (no `/status` call), or, in a process without a poller, made due at
once for whichever poller comes first. Polling stays as a slow safety net for webhooks that never arrive.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import ValidationError

from jobs.handoff import DEFAULT_TAKE_LEASE_MS, Finisher, Handoff, HandoffOutcome
from runpod_client import Job
from storage.models import TrackedJob
from storage.store import JobStore

log = logging.getLogger(__name__)

# aiohttp route of the receiver; the URL RunPod calls is the public base URL followed by this path.
WEBHOOK_ROUTE = "/runpod/webhook/{endpoint_id}/{jid}"
TOKEN_PARAM = "token"
# 128 bits of HMAC-SHA256: far beyond guessing, short enough for a URL.
TOKEN_HEX_CHARS = 32
SECRET_LABEL = b"runpod-bot webhook secret v1"


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


# What receiving a webhook did: the payload is handed over like any job object in hand.
WebhookOutcome = HandoffOutcome


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
        self.handoff = Handoff(store, finisher=finisher, lease_ms=lease_ms)

    @property
    def finisher(self) -> Finisher | None:
        return self.handoff.finisher

    @finisher.setter
    def finisher(self, finisher: Finisher | None) -> None:
        self.handoff.finisher = finisher

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
        return await self.handoff.job_changed(endpoint_id, jid, status)
