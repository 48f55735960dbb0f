"""`JobService`: submit and cancel jobs. Used by the Discord cogs and the command line alike.

Submitting costs money, so the order of steps is deliberate:
1. validate the request against the model (nothing is stored for an invalid request);
2. create the record (idempotent per request id; quotas and cooldown checked atomically) under a submit lease;
3. call `/run` exactly once (the client retries only when the request certainly did not reach RunPod);
4. attach RunPod's id, which schedules the first poll.
At most `RunSettings.concurrency` submits run these steps at once; the others wait their turn (admission that
queues), so a burst of commands meets Redis, Discord and RunPod a bounded number at a time.
A crash between 2 and 4 leaves a SUBMITTING record; when its submit lease runs out the poller marks it
SUBMIT_UNKNOWN and tells the member. It is never resubmitted blindly: that could pay for the same image twice.

A model with `sync = true` is sent with `/runsync?wait=…` instead (under the same rule: never sent twice). Its submit
slot is given back before the request, since RunPod holds the reply for up to the wait; a separate bound
(`RunSettings.sync_waits`) keeps those open requests from taking the HTTP session's connections, and a job that
finds it full goes through `/run`. A reply holding the finished job is attached, then handed to this process's
poller (`jobs.handoff`, as a webhook's payload is), so the result is delivered at once, without a `/status` call;
a job that outlived the wait is tracked by its `sync-` id like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from jobs.access import Action, Actor, is_private, may, refusal
from jobs.defaults import (
    DEFAULT_EXECUTION_TIMEOUT_MS,
    DEFAULT_MAX_QUEUE_WAIT_MS,
    DEFAULT_SUBMIT_CONCURRENCY,
    DEFAULT_SUBMIT_WAIT_S,
    RUNPOD_RETENTION_MS,
    TTL_MARGIN_MS,
)
from jobs.handoff import Handoff
from jobs.health import ModelHealth, Tracking, models_health, tracking
from jobs.labels import DELIVERY_FAILED_FIELD, delivery_failure
from jobs.lineage import PARENT_MODEL_FIELD, Derivation, Parent
from jobs.logcontext import job_context
from jobs.metrics import Metrics
from jobs.policy import PollPolicy
from jobs.presets import (
    MAX_IMAGES_PER_JOB,
    SEED_SCOPE_IMAGE,
    ImageRequest,
    InvalidRequestError,
    ModelCatalog,
    ModelConfig,
    RequestOptions,
    Size,
    SourceImage,
)
from jobs.presses import PRESS_HOLD_MS, PRESS_WINDOW_MS, EarlierPress, PressTicket
from jobs.prompt_filter import PromptRules
from jobs.reasons import (
    CancelOutcome,
    Reason,
    cancel_refusal,
    cancel_summary,
    denied_term_refusal,
    state_words,
    submit_refusal,
)
from jobs.server_settings import ServerRules, ServerSettingsService, operator_rules
from jobs.text import N_, T, Text, stored
from jobs.usage import UsageService, budget_refusal
from runpod_client import JobStatus, Policy, RunPodClient
from runpod_client.errors import NotFoundError, NotSupportedError, RunPodError, RunPodTransportError
from storage.models import JobState, Press, Requester, TrackedJob
from storage.store import (
    BudgetExceededError,
    Claimed,
    CooldownError,
    Created,
    JobStore,
    Limits,
    NewJob,
    QuotaExceededError,
)
from storage.usage import UsageStore

# The templates of this module's texts for members (`jobs.text.stored`), registered when the module is
# imported, so any process recognises them in a kept text and translates them.
DRAWS_IMAGES_AND_DOES_NOT = stored("{name} draws images and does not upscale them")
IS_NOT_CONFIGURED = stored("{name} is not configured")

log = logging.getLogger(__name__)


def policy_ttl_ms(max_queue_wait_ms: int, execution_timeout_ms: int) -> int:
    """The policy.ttl that keeps a result retrievable for RunPod's whole retention after the latest possible finish."""
    return max_queue_wait_ms + execution_timeout_ms + RUNPOD_RETENTION_MS + TTL_MARGIN_MS


# /runsync requests waiting for their job at once per process. Each holds an HTTP connection for up to its wait: this
# leaves most of the session's 100 for /run, /status and image downloads. A submit that finds them all taken is sent
# with /run (tracked by polling) rather than made to wait.
DEFAULT_SYNC_WAITS = 32
# A /runsync's submit lease covers its wait plus this: more than the client's deadline on top of the wait (30 s), so
# a submit still waiting is never mistaken for a crash.
SYNC_LEASE_MARGIN_MS = 60_000
# The admission refusals are the store's (checked in its one script) and named here so front ends need not reach it.
__all__ = ["CancelOutcome", "CooldownError", "QuotaExceededError"]


class JobServiceError(Exception):
    """A refusal a member should read: its `text` (translatable) when it was worded as a `Text`."""

    def __init__(self, message: str | Text = "", *args: object) -> None:
        super().__init__(str(message), *args)
        self.text: Text | None = message if isinstance(message, Text) else None


class JobNotFoundError(JobServiceError):
    def __init__(self, jid: str) -> None:
        super().__init__(T("There is no job `{jid}` (it may have finished more than a week ago).", jid=jid))
        self.jid = jid


class BusyError(JobServiceError):
    """No submit slot freed up in time: nothing was recorded or sent to RunPod."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(
            T(
                "The bot is very busy right now and could not take your request within {waited:g} s. "
                "Nothing was started; please try again in a minute.",
                waited=waited_s,
            )
        )
        self.waited_s = waited_s


def _not_undelivered(job: TrackedJob) -> str:
    """Why a job without a delivery failure cannot be delivered again."""
    if job.state is JobState.DELIVERED:
        return N_("its images were delivered")
    if job.state.is_outcome:
        return N_("its images are being delivered already")
    return N_("it has not finished yet")


class NotRedeliverableError(JobServiceError):
    """A job cannot be delivered again: the message says why, and what can be."""

    def __init__(self, jid: str, why: str) -> None:
        super().__init__(
            T(
                "Job `{jid}` can't be delivered again: {why}. Only a finished job whose images Discord refused "
                '(its card says "Not delivered") can be.',
                jid=jid,
                why=T(why),
            )
        )


class NotAllowedError(JobServiceError):
    """The actor may not act on this job."""


class DeniedTermError(JobServiceError):
    """The prompt holds a term the operator or the server refuses: nothing was recorded or sent. `server_negative`:
    the term is in the server's default negative prompt, not in what the member wrote."""

    def __init__(self, term: str, *, server_negative: bool = False) -> None:
        super().__init__(denied_term_refusal(term, server_negative=server_negative))
        self.term = term


class NsfwPromptError(JobServiceError):
    """The prompt is NSFW where the server's NSFW rules do not allow it: nothing was recorded or sent. The message
    names the term, the rule and where such prompts are allowed (`jobs.nsfw.nsfw_refusal`)."""


class SourceImageUncheckedError(InvalidRequestError):
    """A request starts from an image this service cannot fetch and check (it was built without `prepare_source`):
    refused before anything is recorded, so no unchecked link is sent and no paid job fails on it."""

    def __init__(self) -> None:
        super().__init__(
            "image", "cannot be used: this bot is not set up to fetch source images", "a request without an image"
        )


class NoUpscalerError(JobServiceError):
    """No model of this bot upscales (no `task = "upscale"` in models.toml): the front end posts the image as it is."""

    def __init__(self) -> None:
        super().__init__(
            T(
                "This bot has no upscaler model, so images cannot be enlarged here; an image can only be shown at the "
                "size it was made."
            )
        )


class UpscaleSourceError(JobServiceError):
    """The image asked to be upscaled is not one this job delivered."""


class GpuBudgetError(JobServiceError):
    """The job does not fit in what is left of a GPU-time budget: the message says how much is left and when it
    resets."""


class SubmitFailedError(JobServiceError):
    """RunPod refused or could not take the job; the record holds that outcome with this reason. Showing it (on the
    job's card) is the delivery still to come: the front end that shows it calls `JobService.outcome_shown`; if it
    cannot (Discord failed, the process died), a poller shows it when the delivery lease (`delivering`) ends, as for
    any job whose delivery did not commit."""

    def __init__(self, reason: str, job: TrackedJob, delivering: Claimed | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.job = job
        self.delivering = delivering


@dataclass(frozen=True)
class RunSettings:
    """What every `/run` carries, how long a job may wait for a worker, and the admission limits.

    `ttl_ms` None (the default) derives policy.ttl from the queue wait limit and the execution timeout
    (`policy_ttl_ms`); an explicit value is for tests of what RunPod does when a ttl runs out.
    """

    execution_timeout_ms: int = DEFAULT_EXECUTION_TIMEOUT_MS
    max_queue_wait_ms: int = DEFAULT_MAX_QUEUE_WAIT_MS
    limits: Limits = field(default_factory=Limits)
    concurrency: int = DEFAULT_SUBMIT_CONCURRENCY
    wait_s: float = DEFAULT_SUBMIT_WAIT_S
    ttl_ms: int | None = None
    sync_waits: int = DEFAULT_SYNC_WAITS
    # A member's press of a button that starts a job: refused again while it is handled (at most `press_hold_ms`)
    # and `press_window_ms` after it (`jobs.presses`).
    press_window_ms: int = PRESS_WINDOW_MS
    press_hold_ms: int = PRESS_HOLD_MS

    @property
    def policy_ttl_ms(self) -> int:
        if self.ttl_ms is not None:
            return self.ttl_ms
        return policy_ttl_ms(self.max_queue_wait_ms, self.execution_timeout_ms)


@dataclass(frozen=True)
class Submission:
    """An accepted request: the job as recorded and the resolved parameters.

    `result_in_hand`: RunPod's /runsync reply held the finished job, which is being delivered from it now.
    """

    job: TrackedJob
    request: ImageRequest
    duplicate: bool = False
    result_in_hand: bool = False


class _Slot:
    """One held submit slot, which a submit may give back before it ends (before a /runsync's wait)."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()

    async def reacquire(self, wait_s: float) -> bool:
        """Take a slot again after `release`, waiting at most `wait_s`; False when none freed up in time."""
        if self._held:
            return True
        try:
            async with asyncio.timeout(wait_s):
                await self._slots.acquire()
        except TimeoutError:
            return False
        self._held = True
        return True


@dataclass(frozen=True)
class CancelReport:
    """RunPod's answer to a cancel, as the job record keeps it (`cancel_outcome`): the outcome and a detail (the
    state RunPod reported for FINISHED, what went wrong for REFUSED)."""

    outcome: CancelOutcome
    detail: str = ""

    @property
    def finished_as(self) -> str:
        """For FINISHED, RunPod's state as words (COMPLETED → completed, TIMED_OUT → timed out)."""
        return state_words(self.detail) or "finished"

    def encode(self) -> str:
        return f"{self.outcome.value}:{self.detail}" if self.detail else self.outcome.value

    @classmethod
    def of(cls, job: TrackedJob) -> CancelReport | None:
        """The report stored on a job, or None when no cancel reached RunPod (yet)."""
        if not job.cancel_outcome:
            return None
        kind, _, detail = job.cancel_outcome.partition(":")
        try:
            return cls(CancelOutcome(kind), detail)
        except ValueError:
            return None


@dataclass(frozen=True)
class CancelResult:
    """What a cancel did: `state` is the job's state when asked; `runpod` what RunPod answered to this request's
    `/cancel` (None when none was sent: the job had ended, was already being cancelled, or had no RunPod id yet)."""

    job: TrackedJob
    state: JobState
    first_request: bool
    runpod: CancelReport | None = None

    @property
    def was_live(self) -> bool:
        return self.state.is_live

    def summary(self) -> str:
        """What happened, in words a member reads (the job id in backticks)."""
        report = self.runpod
        if not self.was_live:
            return cancel_summary(self.job.jid, ended_as=self.job.final_state)
        if not self.first_request:
            return cancel_summary(self.job.jid, repeated=True)
        if report is None:
            return cancel_summary(self.job.jid)
        return cancel_summary(self.job.jid, outcome=report.outcome, detail=report.detail)


WebhookFor = Callable[[TrackedJob], str | None]
BeforeRun = Callable[[TrackedJob], Awaitable[None]]
# Fetches, checks and encodes a request's source image for its model (`jobs.source_image.source_preparer`); raises
# `InvalidRequestError` when the image cannot be used.
SourcePreparer = Callable[[ModelConfig, ImageRequest], Awaitable[ImageRequest]]


@dataclass(frozen=True)
class Prepared:
    """A request resolved against its model (defaults applied, seed chosen) and found valid.

    Made by `prepare`, it keeps what it was made from (`options`, the model named, the server's rules then), so a
    submit that finds the server's settings changed since prepares it again under the new ones.
    """

    model: ModelConfig
    request: ImageRequest
    options: RequestOptions | None = None
    model_name: str | None = None
    rules: ServerRules | None = None


class JobService:
    """Validates, admits, records and submits jobs; cancels them for their owner or a moderator."""

    def __init__(
        self,
        store: JobStore,
        clients: Mapping[str, RunPodClient],
        catalog: ModelCatalog,
        *,
        policy: PollPolicy | None = None,
        run_settings: RunSettings | None = None,
        webhook_for: WebhookFor | None = None,
        metrics: Metrics | None = None,
        handoff: Handoff | None = None,
        prompt_rules: PromptRules | None = None,
        prepare_source: SourcePreparer | None = None,
        server_settings: ServerSettingsService | None = None,
    ) -> None:
        self.store = store
        self.clients = clients
        self.catalog = catalog
        self.policy = policy or PollPolicy()
        self.run_settings = run_settings or RunSettings()
        self.webhook_for = webhook_for
        self.metrics = metrics
        self._slots = asyncio.Semaphore(self.run_settings.concurrency)
        # Where a finished job from a /runsync reply goes: this process's poller once attached, else other pollers.
        self.handoff = handoff or Handoff(store)
        self._sync_waiting = 0
        # No rules: no term is refused (the composition root always gives the operator's and the servers' lists).
        self.prompt_rules = prompt_rules
        # None: a request with a source image is refused unless it was prepared already (`prepare_img2img`).
        self.prepare_source = prepare_source
        # Each server's own settings under the operator's limits (None: the operator's for every server).
        self.server_settings = server_settings or ServerSettingsService(None, catalog, self.run_settings.limits)
        # The GPU time members, servers and models used, for /usage (each finished job adds to it where its outcome
        # is recorded: `jobs.job_handler`).
        self.usage = UsageService(UsageStore(store.redis, store.keys), self._limits_in)

    async def _limits_in(self, guild_id: int | None) -> Limits:
        """The limits a member's next job in the server obeys (the operator's outside a server)."""
        return (await self.server_settings.rules(guild_id)).limits

    def prepare(self, options: RequestOptions, model: str | None = None, rules: ServerRules | None = None) -> Prepared:
        """Resolve and check a request against its model under a server's `rules` (from `server_rules`; None: the
        operator's), without I/O: the server's default model when none is named, only a model the server offers, its
        default negative prompt added. Raises `InvalidRequestError`, naming what is allowed."""
        rules = rules or operator_rules(self.catalog, self.run_settings.limits)
        try:
            model_config = self.catalog.get(model or rules.default_model)
        except InvalidRequestError:
            raise InvalidRequestError("model", IS_NOT_CONFIGURED.format(name=repr(model)), rules.allowed_list) from None
        rules.check_model(model_config)
        request = rules.apply_negative(model_config, model_config.resolve(options))
        return Prepared(model_config, request, options=options, model_name=model, rules=rules)

    async def server_rules(self, guild_id: int | None) -> ServerRules:
        """What a job of this server obeys now (its `/settings` under the operator's caps; the operator's alone in a
        DM): one Redis read, for a front end to prepare a request before it defers. `submit` reads them again."""
        return await self.server_settings.rules(guild_id)

    def _under(self, prepared: Prepared, rules: ServerRules) -> Prepared:
        """The prepared request under the server's rules as they are at admission."""
        if prepared.rules == rules:
            return prepared
        if prepared.options is not None:
            # Prepared under other rules (none, or the settings changed since): the default model, the models offered
            # and the default negative prompt are those of now.
            return self.prepare(prepared.options, prepared.model_name, rules)
        # Built by hand (an upscale: its upscaler is the operator's): only the model is checked, and the negative
        # prompt follows the server's (none for an upscaler).
        rules.check_model(prepared.model)
        return replace(prepared, request=rules.apply_negative(prepared.model, prepared.request), rules=rules)

    async def submit(
        self,
        request: RequestOptions | Prepared,
        requester: Requester,
        *,
        model: str | None = None,
        request_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        before_run: BeforeRun | None = None,
    ) -> Submission:
        """Validate, admit and submit; raises `InvalidRequestError`, `DeniedTermError`, `NsfwPromptError`, `BusyError`,
        quota errors or `SubmitFailedError`.

        The deny-list (the operator's terms, and those of the requester's server) is checked here, before anything is
        recorded, so every front end and every way in (a command, Re-roll, Retry, the command line) refuses alike.
        `before_run` is awaited after the record exists and before `/run` (the Discord cog posts the job card there,
        so every paid job has a card); if it raises, the job ends FAILED without reaching RunPod.
        A source image not yet fetched and checked (a Re-roll's stored link, plain `RequestOptions`) is fetched here,
        in the submit's turn and before the record exists: every way in checks it alike, and a link that expired or
        is not an image is refused in words (`SourceImageError`) instead of failing a paid job.
        """
        # The server's settings as they are now, whatever a front end read before: one Redis read per submit, in
        # every process, so a change applies to the very next job.
        rules = await self.server_settings.rules(requester.guild_id)
        prepared = self._under(request, rules) if isinstance(request, Prepared) else self.prepare(request, model, rules)
        await self._refuse_denied_terms(prepared.request, requester.guild_id)
        # Only the member's prompt: an NSFW word in a negative prompt keeps NSFW out.
        refusal = rules.nsfw.refusal(prepared.request.prompt, requester.age_restricted)
        if refusal is not None:
            raise NsfwPromptError(refusal)
        extra = {**(extra or {}), **rules.job_extra()}
        async with self._turn() as slot:
            prepared = await self._checked_source(prepared)
            return await self._submit(prepared, requester, request_id, extra, before_run, slot)

    async def claim_press(self, press: Press) -> PressTicket | EarlierPress:
        """Hold `press` (a member's press of a button that starts a job) while it is handled, in every process
        alike; `EarlierPress` when the same press holds it already (a double press), naming the job it started.
        End the ticket once the press is answered (`jobs.presses`)."""
        hold = await self.store.claim_press(press, self.run_settings.press_hold_ms)
        if hold.token is None:
            return EarlierPress(hold.jid)
        return PressTicket(self.store, press, hold.token, self.run_settings.press_window_ms)

    def upscaler(self, name: str | None = None) -> ModelConfig | None:
        """The upscaler an Upscale uses: the one named, or the first of models.toml; None when none is configured
        (the front end then posts the image as it is). Raises `InvalidRequestError` for a name that is not one."""
        upscalers = self.catalog.upscalers
        if name is None:
            return upscalers[0] if upscalers else None
        model = self.catalog.get(name)
        if not model.is_upscaler:
            able = ", ".join(upscaler.name for upscaler in upscalers) or "none is configured"
            raise InvalidRequestError("model", DRAWS_IMAGES_AND_DOES_NOT.format(name=model.name), able)
        return model

    async def submit_upscale(
        self,
        parent: TrackedJob,
        image_index: int,
        image_url: str,
        requester: Requester,
        *,
        actor: Actor | None = None,
        upscaler: str | None = None,
        request_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        before_run: BeforeRun | None = None,
    ) -> Submission:
        """Upscale image `image_index` (1-based) of the finished job `parent`, found at `image_url` (where the front
        end shows it: the result message's attachment), as a new job of `requester`.

        The job is like any other: the same deny-list (the parent's prompt is checked again), admission (quotas,
        cooldown, the idempotent `request_id`), `before_run`, one `/run`, tracking and delivery. Its record names
        its parent and the image (`jobs.lineage`: `Parent(jid, UPSCALE, image_index)`) and the parent's model (an
        upscaled PNG's parameters name it). The image is fetched and checked as an img2img source is, sent at its
        own size, and the job's size is that size times the upscaler's factor.
        Raises `NoUpscalerError` when no upscaler is configured (post the image as it is instead),
        `InvalidRequestError` (`upscaler` names a model that draws; the image cannot be used), `UpscaleSourceError`,
        `NotAllowedError` (a private job's image, for anyone but its owner and the operator), and what `submit`
        raises.
        """
        model = self.upscaler(upscaler)
        if model is None:
            raise NoUpscalerError()
        if actor is not None and is_private(parent) and not may(actor, parent):
            raise NotAllowedError(refusal(actor, parent, Action.VIEW))
        if parent.final_state is not JobState.COMPLETED:
            raise UpscaleSourceError(T("Job `{jid}` has no images to upscale: it did not complete.", jid=parent.jid))
        if not 1 <= image_index <= MAX_IMAGES_PER_JOB:
            raise UpscaleSourceError(
                T(
                    "Job `{jid}` has no image {index}. Allowed: 1 to {last}.",
                    jid=parent.jid,
                    index=image_index,
                    last=MAX_IMAGES_PER_JOB,
                )
            )
        if model.scale is None:  # pragma: no cover - an upscaler always has its factor
            raise NoUpscalerError()
        url = image_url.strip()
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise InvalidRequestError("image", N_("is not an http(s) link"), N_("the link of the result's image"))
        drawn = ImageRequest.from_dict(parent.request)
        request = ImageRequest(
            prompt=drawn.prompt,
            negative_prompt=drawn.negative_prompt,
            # Until the image is fetched: the parent's size enlarged (the fetched image's own size replaces it).
            size=Size(round(drawn.size.width * model.scale), round(drawn.size.height * model.scale)),
            steps=drawn.steps,
            guidance=drawn.guidance,
            # Image n's own seed where each image has one (A1111: seed + n - 1), else the batch's.
            seed=drawn.seed + image_index - 1 if drawn.seed_scope == SEED_SCOPE_IMAGE else drawn.seed,
            count=1,
            seed_scope=drawn.seed_scope,
            source=SourceImage(url),
            scale=model.scale,
        )
        lineage = {
            **(extra or {}),
            **Parent(parent.jid, Derivation.UPSCALE, image_index).as_extra(),
            PARENT_MODEL_FIELD: parent.model,
        }
        return await self.submit(
            Prepared(model, request), requester, request_id=request_id, extra=lineage, before_run=before_run
        )

    async def _checked_source(self, prepared: Prepared) -> Prepared:
        """The request with its source image fetched, checked and encoded (as it is without one, or when done)."""
        source = prepared.request.source
        if source is None or source.encoded is not None:
            return prepared
        if self.prepare_source is None:
            raise SourceImageUncheckedError()
        return replace(prepared, request=await self.prepare_source(prepared.model, prepared.request))

    async def _refuse_denied_terms(self, request: ImageRequest, guild_id: int | None) -> None:
        if self.prompt_rules is None:
            return
        denied = await self.prompt_rules.denied_term(request.prompt + " " + request.own_negative, guild_id)
        if denied is not None:
            raise DeniedTermError(denied)
        if request.server_negative:
            # Checked when it was set; a term the deny-lists gained since is named as the server's, not the member's.
            denied = await self.prompt_rules.denied_term(request.server_negative, guild_id)
            if denied is not None:
                raise DeniedTermError(denied, server_negative=True)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[_Slot]:
        """Hold one of the submit slots; wait for it at most `RunSettings.wait_s`, else raise `BusyError`."""
        wait_s = self.run_settings.wait_s
        try:
            async with asyncio.timeout(wait_s):
                await self._slots.acquire()
        except TimeoutError:
            log.warning(
                "a submit waited %.0f s for one of %d slots; refused as busy", wait_s, self.run_settings.concurrency
            )
            if self.metrics is not None:
                self.metrics.submits_refused_busy.inc()
            raise BusyError(wait_s) from None
        slot = _Slot(self._slots)
        try:
            yield slot
        finally:
            slot.release()

    def _sync_wait_ms(self, model_config: ModelConfig) -> int | None:
        """The /runsync wait for this submit, taking one of the sync waits; None: send it with /run."""
        if model_config.sync_wait_ms is None:
            return None
        if self._sync_waiting >= self.run_settings.sync_waits:
            log.info("all %d /runsync waits are taken; sending with /run", self.run_settings.sync_waits)
            return None
        self._sync_waiting += 1
        return model_config.sync_wait_ms

    async def _submit(
        self,
        prepared: Prepared,
        requester: Requester,
        request_id: str | None,
        extra: Mapping[str, Any] | None,
        before_run: BeforeRun | None,
        slot: _Slot,
    ) -> Submission:
        sync_wait_ms = self._sync_wait_ms(prepared.model)
        try:
            return await self._record_and_send(prepared, requester, request_id, extra, before_run, slot, sync_wait_ms)
        finally:
            if sync_wait_ms is not None:
                self._sync_waiting -= 1

    async def _record_and_send(
        self,
        prepared: Prepared,
        requester: Requester,
        request_id: str | None,
        extra: Mapping[str, Any] | None,
        before_run: BeforeRun | None,
        slot: _Slot,
        sync_wait_ms: int | None,
    ) -> Submission:
        submit_lease_ms = None
        if sync_wait_ms is not None:
            # The card says the result is awaited in the reply, and for how long.
            extra = {**(extra or {}), "sync_wait_s": sync_wait_ms / 1000}
            submit_lease_ms = max(self.store.config.submit_lease_ms, sync_wait_ms + SYNC_LEASE_MARGIN_MS)
        now = datetime.now(UTC)
        try:
            created = await self._create(prepared, requester, request_id, extra, submit_lease_ms, now)
        except BudgetExceededError as exc:
            raise GpuBudgetError(budget_refusal(exc.scope, exc.budget_ms, exc.left_ms, exc.estimate_ms, now)) from None
        with job_context(created.jid):
            return await self._submit_created(created, prepared, before_run, slot, sync_wait_ms)

    async def _create(
        self,
        prepared: Prepared,
        requester: Requester,
        request_id: str | None,
        extra: Mapping[str, Any] | None,
        submit_lease_ms: int | None,
        now: datetime,
    ) -> Created:
        model_config, image_request = prepared.model, prepared.request
        return await self.store.create(
            NewJob(
                jid=uuid.uuid4().hex[:16],
                endpoint_id=model_config.endpoint_id,
                model=model_config.name,
                user_id=requester.user_id,
                guild_id=requester.guild_id,
                channel_id=requester.channel_id,
                request_id=request_id,
                request=image_request.as_dict(),
                extra=extra,
                ttl_ms=self.run_settings.policy_ttl_ms,
                max_queue_wait_ms=self.run_settings.max_queue_wait_ms,
                images=image_request.count,
                at=now,
            ),
            prepared.rules.limits if prepared.rules is not None else self.run_settings.limits,
            submit_lease_ms=submit_lease_ms,
        )

    async def _submit_created(
        self,
        created: Created,
        prepared: Prepared,
        before_run: BeforeRun | None,
        slot: _Slot,
        sync_wait_ms: int | None,
    ) -> Submission:
        model_config, image_request = prepared.model, prepared.request
        job = await self.store.get(created.jid)
        if job is None:  # pragma: no cover - the record was written in the same call
            raise JobNotFoundError(created.jid)
        if created.duplicate:
            return Submission(job=job, request=ImageRequest.from_dict(job.request), duplicate=True)
        if before_run is not None:
            # The card's post waits on Discord, which lets a bot post about one message a second in a channel: it
            # holds no submit slot meanwhile, so a burst of commands in one channel does not keep every other submit
            # (and its /run) waiting, nor get refused as busy.
            slot.release()
            try:
                await before_run(job)
            except BaseException:
                # No card to show it on (posting it is what failed, mostly): done at once.
                _, delivering = await self._finish(job, created.token, JobState.FAILED, Reason.STOPPED_BEFORE_SENT)
                if delivering is not None:
                    await self.store.finalize_commit(delivering)
                raise
            wait_s = self.run_settings.wait_s
            if not await slot.reacquire(wait_s):
                log.warning("job %s: no submit slot within %.0f s after its card; not sent", job.jid, wait_s)
                # The card shows the outcome (the front end's `outcome_shown`), as for a /run that failed.
                raise await self._failed(job, created.token, JobState.FAILED, Reason.BUSY_AT_SUBMIT)
            job = await self.store.get(job.jid) or job
        client = self.clients[model_config.endpoint_id]
        policy = Policy(ttl=self.run_settings.policy_ttl_ms, execution_timeout=self.run_settings.execution_timeout_ms)
        # RunPod's local worker server posts only the output, and only while answering the status request that ran
        # the job: no use to the bot, so its jobs get no webhook; and a job starts there only when its status is
        # first asked for, which is done at once.
        local = model_config.local_worker_url is not None
        worker_input = model_config.build_input(image_request)
        operation = "/run" if sync_wait_ms is None else "/runsync"
        try:
            if sync_wait_ms is None:
                webhook = self.webhook_for(job) if self.webhook_for and not local else None
                accepted = await client.run(worker_input, webhook=webhook, policy=policy)
            else:
                # RunPod holds the reply for up to the wait: other submits take the slot meanwhile. No webhook: the
                # reply brings the result, and a job outliving the wait is polled (its result is kept only 1 minute).
                slot.release()
                accepted = await client.run_sync(worker_input, sync_wait_ms, policy=policy)
        except RunPodTransportError as exc:
            await self.store.record_endpoint_error(job.endpoint_id, str(exc))
            if exc.maybe_sent:
                log.warning("job %s: %s outcome unknown: %s", job.jid, operation, exc)
                raise await self._failed(job, created.token, JobState.SUBMIT_UNKNOWN, Reason.SUBMIT_UNKNOWN) from None
            raise await self._failed(job, created.token, JobState.FAILED, Reason.UNREACHABLE_AT_SUBMIT) from None
        except RunPodError as exc:
            await self.store.record_endpoint_error(job.endpoint_id, str(exc))
            log.warning("job %s: %s refused: %s", job.jid, operation, exc)
            raise await self._failed(job, created.token, JobState.FAILED, submit_refusal(exc)) from None
        if self.metrics is not None:
            self.metrics.jobs_submitted.labels(model=model_config.name).inc()
        # Attached before a finished job is handed over: from here a crash leaves a job a poller finds, by /status.
        first_poll_ms = 0 if local else self.policy.first_poll(sync=sync_wait_ms is not None)
        await self.store.attach_runpod_id(job, accepted.id, first_poll_ms)
        attached = await self.store.get(job.jid)
        if attached is None:  # pragma: no cover
            raise JobNotFoundError(job.jid)
        in_hand = sync_wait_ms is not None and accepted.is_finished
        if in_hand:
            # The /runsync reply is the finished job: delivered from it (a cancel meanwhile still wins there).
            await self.handoff.job_changed(job.endpoint_id, job.jid, accepted)
        elif attached.cancel_requested_by is not None:
            # Cancelled while /run was in flight: stop the paid job now.
            await self._cancel_at_runpod(attached)
        return Submission(job=attached, request=image_request, result_in_hand=in_hand)

    async def _finish(
        self, job: TrackedJob, token: int, outcome: JobState, reason: str
    ) -> tuple[TrackedJob, Claimed | None]:
        """Record the outcome of a job whose submit failed, under a delivery lease (None: another process holds the
        job): the job as now recorded, and the lease to commit once the outcome is shown."""
        claim = Claimed(job=job, token=token)
        fields = {"error": reason or Reason.SUBMIT_UNKNOWN}
        # A job that may have reached RunPod (its /run's outcome unknown) keeps its budget reservation; one that
        # surely did not gets it back.
        delivering = await self.store.finalize_begin(
            claim,
            outcome,
            lease_ms=self.policy.delivery_lease_ms,
            fields=fields,
            keep_reservation=outcome is JobState.SUBMIT_UNKNOWN,
        )
        return await self.store.get(job.jid) or job, delivering

    async def _failed(self, job: TrackedJob, token: int, outcome: JobState, reason: str) -> SubmitFailedError:
        """End a job whose `/run` failed: the member hears it from the command's reply, and the card shows it
        (`outcome_shown`, or a poller when the delivery lease ends)."""
        finished, delivering = await self._finish(job, token, outcome, reason)
        return SubmitFailedError(reason, finished, delivering)

    async def outcome_shown(self, failure: SubmitFailedError) -> None:
        """The outcome of a failed submit is shown (on its card, or to the terminal that asked): the job is done.
        Until this is called, a poller shows the outcome again when the delivery lease ends."""
        if failure.delivering is not None:
            await self.store.finalize_commit(failure.delivering)

    async def get(self, jid: str) -> TrackedJob:
        job = await self.store.get(jid)
        if job is None:
            raise JobNotFoundError(jid)
        return job

    # --- what the front ends read and record (they never reach the store themselves) ---------------------------

    async def find(self, jid: str) -> TrackedJob | None:
        """The job, or None when it is unknown or its record has expired."""
        return await self.store.get(jid)

    async def recent_jobs(self, actor: Actor, user_id: int, limit: int, scanned: int) -> list[TrackedJob]:
        """Up to `limit` of the member's jobs that the actor may see from where they act, newest first, among the
        member's `scanned` most recent (others may be another server's): a moderator sees that member's jobs of
        their server, not private ones; a member asking in a server sees theirs of that server, not private ones;
        the operator, and a member in a DM, see them all."""
        jobs = await self.store.user_recent(user_id, limit=scanned)
        if user_id != actor.user_id and not actor.operator:
            jobs = [job for job in jobs if may(actor, job)]
        elif actor.guild_id is not None and not actor.operator:
            jobs = [job for job in jobs if job.guild_id == actor.guild_id and not is_private(job)]
        return jobs[:limit]

    async def jobs_to_cancel(self, actor: Actor) -> list[TrackedJob]:
        """The live jobs the actor may cancel from where they act: in a server they moderate (or as the operator),
        that server's, but private ones; otherwise their own, everywhere."""
        if actor.guild_id is not None and (actor.moderator or actor.operator):
            return await self.server_jobs(actor)
        return await self.store.user_active(actor.user_id)

    async def server_jobs(self, actor: Actor) -> list[TrackedJob]:
        """The live jobs of the actor's server that they may act on (a moderator: all but private ones); none in a
        DM."""
        if actor.guild_id is None:
            return []
        return [job for job in await self.store.guild_active(actor.guild_id) if may(actor, job)]

    async def endpoint_health(self, models: Sequence[ModelConfig]) -> list[ModelHealth]:
        """Each model's endpoint health from RunPod, asked at once, in the order of `models`."""
        return await models_health(models, self.clients)

    async def tracking(self, endpoint_ids: Sequence[str]) -> Tracking:
        """The tracker's own state: Redis reachable, and per endpoint its scheduled jobs, how late the most overdue
        poll is and RunPod's last error."""
        return await tracking(self.store, endpoint_ids)

    async def record_card(self, jid: str, message_id: int) -> None:
        """Remember the message that shows the job's card (edited as the job moves)."""
        await self.store.update(jid, {"card_message_id": message_id})

    async def record_results(
        self, job: TrackedJob, message_ids: Sequence[int], details: Mapping[str, Any] | None = None
    ) -> TrackedJob:
        """Remember the messages that hold the job's images, as soon as they exist (delivery is then idempotent), with
        `details` about them merged into the job's `extra` in the same write; the job as now recorded."""
        extra = {**job.extra, **(details or {})}
        await self.store.update(job.jid, {"result_message_ids": list(message_ids), "extra": extra})
        return job.model_copy(update={"result_message_ids": list(message_ids), "extra": extra})

    async def record_undelivered(self, job: TrackedJob, reason: str) -> TrackedJob:
        """Record why the job's result could not be delivered; the job as its card now shows it."""
        extra = {**job.extra, DELIVERY_FAILED_FIELD: reason}
        await self.store.update(job.jid, {"extra": extra})
        return job.model_copy(update={"extra": extra})

    async def deliver_again(self, jid: str, actor: Actor) -> TrackedJob:
        """Deliver again a job whose images Discord refused for good (its owner, a moderator of its server, or the
        operator, once the cause is fixed): a poller fetches its result from RunPod again, at no GPU cost, and posts
        it; if RunPod no longer has it, the job ends Expired and can be retried. Raises `NotRedeliverableError` for
        a job that was not left undelivered, or that another press already sent again."""
        job = await self.store.get(jid)
        if job is None:
            raise JobNotFoundError(jid)
        self.authorize(job, actor, Action.DELIVER)
        if delivery_failure(job) is None:
            raise NotRedeliverableError(jid, _not_undelivered(job))
        if job.state is not JobState.DELIVERED:
            still_recording = N_("the bot is still recording that it was not delivered; press again soon")
            raise NotRedeliverableError(jid, still_recording)
        extra = {key: value for key, value in job.extra.items() if key != DELIVERY_FAILED_FIELD}
        if not await self.store.reopen_delivery(job, extra):
            raise NotRedeliverableError(jid, N_("its images are being delivered again already"))
        if self.handoff.finisher is not None:
            self.handoff.finisher.wake()
        return job.model_copy(update={"state": JobState.COMPLETED, "extra": extra})

    @staticmethod
    def authorize(job: TrackedJob, actor: Actor, action: Action) -> None:
        """Raise `NotAllowedError` unless the actor may act on the job (`jobs.access`: owner, a moderator of the
        job's server, or the operator)."""
        if not may(actor, job):
            raise NotAllowedError(refusal(actor, job, action))

    async def cancel(self, jid: str, actor: Actor) -> CancelResult:
        """Cancel a job for its owner, a moderator of its server or the operator; idempotent. A finished job is left
        as it is. RunPod's answer is recorded on the job (for its card) before a poller is asked to look at it."""
        with job_context(jid):
            return await self._cancel(jid, actor)

    async def _cancel(self, jid: str, actor: Actor) -> CancelResult:
        job = await self.get(jid)
        self.authorize(job, actor, Action.CANCEL)
        # Not due at once: the poller would race this /cancel with its own and might finish the job before RunPod's
        # answer is recorded. `note_cancel` makes it due once the answer is stored.
        request = await self.store.request_cancel(job, actor.user_id, due_now=False)
        state = request.state or job.state
        report = None
        if request.first and state in (JobState.QUEUED, JobState.RUNNING):
            report = await self._cancel_at_runpod(job)
        refreshed = await self.store.get(jid) or job
        return CancelResult(job=refreshed, state=state, first_request=request.first, runpod=report)

    async def _cancel_at_runpod(self, job: TrackedJob) -> CancelReport | None:
        """Send `/cancel` once (with the client's retries), record RunPod's answer on the job, and make it due."""
        if job.runpod_id is None:
            return None
        report = await cancel_at_runpod(self.clients[job.endpoint_id], job)
        await self.store.note_cancel(job, report.encode())
        return report


async def cancel_at_runpod(client: RunPodClient, job: TrackedJob, *, timeout_s: float | None = None) -> CancelReport:
    """Send `/cancel` for the job once (with whatever retries `client` makes, within `timeout_s` if given) and say
    what RunPod answered; a cancel that did not get through is REFUSED (whoever tracks the job asks again)."""
    if job.runpod_id is None:
        raise ValueError(f"job {job.jid} has no RunPod id to cancel")
    try:
        async with asyncio.timeout(timeout_s):
            answer = await client.cancel(job.runpod_id)
    except NotFoundError:
        return CancelReport(CancelOutcome.GONE)
    except NotSupportedError:
        return CancelReport(CancelOutcome.UNSUPPORTED)
    except RunPodError as exc:
        log.warning("job %s: /cancel failed: %s", job.jid, exc)
        return CancelReport(CancelOutcome.REFUSED, cancel_refusal(exc))
    except TimeoutError:
        log.warning("job %s: /cancel failed: no answer within %s s", job.jid, timeout_s)
        return CancelReport(CancelOutcome.REFUSED, Reason.CANCEL_UNANSWERED)
    if answer.is_finished and answer.status is not JobStatus.CANCELLED:
        return CancelReport(CancelOutcome.FINISHED, answer.status.value)
    return CancelReport(CancelOutcome.ACCEPTED)
