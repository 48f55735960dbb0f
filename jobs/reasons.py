"""Every reason a member or operator reads for how a job ended (or why it was not started), in one place.

Fixed texts are members of `Reason`; those that name this job's numbers are built by the functions below. The
front ends (cards, replies, the command line) show these words as they are; a translation layer words them here.
"""

from __future__ import annotations

import re
from enum import StrEnum
from http import HTTPStatus

from jobs.policy import is_sync_id
from runpod_client import (
    AuthenticationError,
    BadRequestError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    ResultLostError,
    RunPodAPIError,
    RunPodError,
    RunPodTransportError,
    ServerError,
)
from storage.models import JobState, TrackedJob


class Reason(StrEnum):
    """The fixed reasons and notes a member reads."""

    EXPIRED = (
        "RunPod no longer has this job, so its images are lost: RunPod deletes a job's result 30 minutes after it "
        "finishes, and deletes every job, finished or not, at its time limit."
    )
    RESULT_LOST = (
        "RunPod's local worker server no longer has this job, so its images are lost: that server runs a job when "
        "the bot first asks for its status and gives the result only in that one reply, which did not reach the bot "
        "(or the server was restarted)."
    )
    SYNC_EXPIRED = (
        "RunPod no longer has this job, so its images are lost: it was sent with /runsync (a fast model), whose "
        "result RunPod keeps only 1 minute after it finishes, and the bot could not fetch it in that time (it was "
        "restarted or stalled)."
    )
    # Ends the reason of a live job the bot gave up on.
    GAVE_UP = ", so the bot stopped waiting for it and asked RunPod to cancel it."
    # Ends the reason of a finished job whose images could not be fetched again.
    IMAGES_LOST = ", so its images are lost."
    # Added when a bad API key ended a job: the member knows whom to ask.
    FIX_THE_KEY = " A server admin needs to fix the bot's RunPod API key."
    NO_IMAGE = "The worker finished without returning any image."
    UNDELIVERED = "The result could not be delivered because of an unexpected error, logged by the bot"
    SUBMIT_UNKNOWN = (
        "RunPod did not confirm the job before the connection failed, so it may or may not be running. "
        "It is not tracked and was not sent again, to avoid paying twice; please submit it again if no image arrives."
    )
    # What cancelling a job on RunPod's local worker server does (it has no /cancel; it runs a job only during the
    # first status request, which answers when the job is done).
    LOCAL_CANCEL = (
        "RunPod's local worker server cannot cancel a job. The bot stops tracking it and posts no result: if the "
        "worker had not started it (it runs a job only when the bot first asks for its status), it never will; if it "
        "was running, it runs to its end on the worker's machine."
    )
    STOPPED_BEFORE_SENT = "The job was stopped before it was sent."
    BUSY_AT_SUBMIT = "The bot was too busy to send it to RunPod in time. Nothing was started; please retry it."
    UNREACHABLE_AT_SUBMIT = "RunPod could not be reached. Nothing was started; please try again in a minute."
    # A worker whose safety checker withheld every image (`worker_failure_reason`).
    WORKER_NSFW = (
        "The model's safety checker judged the images NSFW and the worker withheld them, so it returned no image. "
        "This model refuses such images in every channel; try a different prompt or seed."
    )
    # A job that ended with no reason from RunPod.
    WORKER_FAILED = "The worker failed without saying why."
    CANCELLED = "The job was cancelled."
    TIMED_OUT = "The job ran longer than the endpoint's execution timeout."
    ENDED = "The job ended."
    # Why a /cancel did not get through (see `cancel_refusal`).
    CANCEL_UNANSWERED = "it did not answer in time"
    # What deadline reasons say RunPod reported (`deadline_reason`).
    STATUS_STILL_FAILING = "RunPod's status checks of this job were still failing"


class CancelOutcome(StrEnum):
    """What RunPod answered to `/cancel`."""

    ACCEPTED = "accepted"  # it took the cancel: the job is CANCELLED there (or still stopping)
    GONE = "gone"  # 404: RunPod no longer knows the job (expired, purged, or never kept)
    FINISHED = "finished"  # the job had already ended there (completed, failed, timed out) before the cancel
    REFUSED = "refused"  # an error: the cancel did not get through; the poller asks again on each check
    UNSUPPORTED = "unsupported"  # RunPod's local worker server has no /cancel: the bot stops tracking the job


class StatusErrorKind(StrEnum):
    """What a failed `/status` check means, which decides how long such failures may go on (a 404 is EXPIRED)."""

    REFUSED = "refused"  # 400 and every other 4xx but 401, 403, 404 and 429
    UNREADABLE = "unreadable"  # a success status with a body that is no job object (a proxy's page)
    AUTH = "auth"  # 401, 403: the key is wrong or has no access to the endpoint
    RATE_LIMITED = "rate_limited"  # 429
    SERVER = "server"  # 5xx
    UNREACHABLE = "unreachable"  # no connection, a reset, a timeout


def classify_status_error(exc: RunPodError) -> StatusErrorKind:
    if isinstance(exc, AuthenticationError):
        return StatusErrorKind.AUTH
    if isinstance(exc, RateLimitedError):
        return StatusErrorKind.RATE_LIMITED
    if isinstance(exc, InvalidResponseError):
        return StatusErrorKind.UNREADABLE
    if isinstance(exc, ServerError):
        return StatusErrorKind.SERVER
    if isinstance(exc, RunPodAPIError):
        return StatusErrorKind.REFUSED
    return StatusErrorKind.UNREACHABLE


# What a worker with a safety checker reports when it withheld every image (worker-stable_diffusion_v1's predict.py,
# after Replicate's cog-stable-diffusion: "NSFW content detected. Try running it again, or try a different prompt.").
_WORKER_NSFW = re.compile(r"\bnsfw content detected\b", re.IGNORECASE)


def worker_failure_reason(error: str | None, outcome: JobState) -> str:
    """A failed job's reason: the worker's own words, or ours where they would puzzle a member (an NSFW filter)."""
    if error is not None and _WORKER_NSFW.search(error):
        return Reason.WORKER_NSFW
    return error or default_reason(outcome)


def expired_reason(job: TrackedJob, error: NotFoundError | None = None) -> str:
    """Why a job RunPod answers 404 for lost its images: RunPod's two deletion rules, with this job's time limit (or
    the local worker server's one answer per job, or /runsync's one minute)."""
    if isinstance(error, ResultLostError):
        return Reason.RESULT_LOST
    if is_sync_id(job.runpod_id):
        return Reason.SYNC_EXPIRED
    if job.ttl_ms is None:
        return Reason.EXPIRED
    return Reason.EXPIRED.removesuffix(".") + f" ({duration(job.ttl_ms)} after it was submitted)."


def queue_wait_reason(job: TrackedJob) -> str:
    """Why a job no worker started within its queue wait limit was cancelled."""
    limit = duration(job.max_queue_wait_ms or 0)
    return (
        f"No GPU worker started this job within {limit} (how long this bot lets a job wait in the queue), so the bot "
        "asked RunPod to cancel it before it could run. Please try again later."
    )


def still_reported_as(running: bool) -> str:
    """What RunPod last said of a job found live past its time limit (for `deadline_reason`)."""
    return f"RunPod still reported this job as {'running' if running else 'waiting for a worker'}"


def deadline_reason(job: TrackedJob, late_ms: float, what: str) -> str:
    """Why a job still live `late_ms` after its time limit was given up; `what` says what RunPod answered."""
    limit = f"{duration(job.ttl_ms)} from submission, " if job.ttl_ms is not None else ""
    late = duration(late_ms)
    return f"{what} {late} after its time limit ({limit}when RunPod deletes a job whatever its state)" + Reason.GAVE_UP


def status_error_reason(kind: StatusErrorKind, exc: RunPodError, lasted_ms: float) -> str:
    """What a member reads when failed status checks end a job (no body text: it may be anything), before the
    ending that says what the bot did (`Reason.GAVE_UP` or `Reason.IMAGES_LOST`)."""
    lasted = duration(lasted_ms)
    status = exc.status if isinstance(exc, RunPodAPIError) else 0
    if kind is StatusErrorKind.AUTH:
        return f"RunPod kept rejecting the bot's API key (HTTP {status}) for {lasted}"
    if kind is StatusErrorKind.RATE_LIMITED:
        return f"RunPod kept refusing this job's status checks over its rate limit (HTTP 429) for {lasted}"
    if kind is StatusErrorKind.UNREADABLE:
        return f"RunPod's answers to this job's status checks could not be read for {lasted}"
    if kind is StatusErrorKind.UNREACHABLE:
        return f"RunPod could not be reached to check on this job for {lasted}"
    return f"RunPod kept answering {_http_status(status)} to this job's status checks for {lasted}"


def delivery_gave_up(cause: str, attempts: int) -> str:
    """Why a result was not delivered after `attempts` failed attempts."""
    return f"{cause}; gave up after {attempts} attempts."


def default_reason(state: JobState) -> str:
    """The reason of a job that ended in `state` when RunPod gave none."""
    return {
        JobState.FAILED: Reason.WORKER_FAILED,
        JobState.CANCELLED: Reason.CANCELLED,
        JobState.TIMED_OUT: Reason.TIMED_OUT,
        JobState.EXPIRED: Reason.EXPIRED,
        JobState.SUBMIT_UNKNOWN: Reason.SUBMIT_UNKNOWN,
    }.get(state, Reason.ENDED)


def state_words(state: str) -> str:
    """A state as words (COMPLETED → completed, TIMED_OUT → timed out)."""
    return state.lower().replace("_", " ")


def cancel_summary(
    jid: str,
    *,
    ended_as: JobState | None = None,
    repeated: bool = False,
    outcome: CancelOutcome | None = None,
    detail: str = "",
) -> str:
    """What a cancel did, in words a member reads (the job id in backticks): the job had `ended_as` already, or was
    already being cancelled (`repeated`), or RunPod answered this `outcome` (None: no answer yet)."""
    if ended_as is not None:
        return f"Job `{jid}` had already ended ({state_words(ended_as.value)})."
    if repeated:
        return f"Job `{jid}` is already being cancelled."
    if outcome is None:
        return f"Cancelling job `{jid}`… It is stopped as soon as RunPod confirms it has it."
    if outcome is CancelOutcome.GONE:
        return (
            f"RunPod no longer knows job `{jid}` (it expired or was removed there), so there was nothing to "
            "cancel: nothing is running or billed for it, and its images, if any, are lost."
        )
    if outcome is CancelOutcome.FINISHED:
        return (
            f"Job `{jid}` had already finished at RunPod ({state_words(detail) or 'finished'}) when the cancel "
            "arrived, so its GPU time is spent."
        )
    if outcome is CancelOutcome.UNSUPPORTED:
        return f"Job `{jid}` is cancelled in the bot, but not stopped at the worker: " + Reason.LOCAL_CANCEL
    if outcome is CancelOutcome.REFUSED:
        return (
            f"RunPod refused to cancel job `{jid}` for now ({detail}). The bot asks again each time it "
            "checks the job; its card shows when it has stopped."
        )
    return f"Cancelling job `{jid}`… RunPod accepted the cancel; the card shows when it has stopped."


def denied_term_refusal(term: str, *, server_negative: bool = False) -> str:
    """Why a prompt was refused by the deny-list (the operator's or the server's), naming the term as it is listed;
    `server_negative`: the term is in the server's default negative prompt, which its moderators must change."""
    if server_negative:
        return (
            f"This server's default negative prompt holds the term “{term}”, which the deny-list refuses, so no job "
            "can start here until a moderator changes or removes that negative prompt."
        )
    return f"This server doesn't allow the term “{term}” in prompts. Please rephrase."


def submit_refusal(exc: RunPodError) -> str:
    """Why RunPod did not take a job on `/run` (nothing was started)."""
    if isinstance(exc, AuthenticationError):
        return "RunPod rejected the bot's API key. Nothing was started; a server admin needs to fix the key."
    if isinstance(exc, NotFoundError):
        return "RunPod does not know this model's endpoint. Nothing was started; a server admin needs to check it."
    if isinstance(exc, RateLimitedError):
        return "RunPod is rate limiting this endpoint. Nothing was started; please try again in a minute."
    if isinstance(exc, BadRequestError):
        return "RunPod refused the request as invalid. Nothing was started."
    return "RunPod answered with an error and did not accept the job; please try again later."


def cancel_refusal(exc: RunPodError) -> str:
    """Why a `/cancel` did not get through, in a few words (no reply body: it is RunPod's, not the member's)."""
    if isinstance(exc, AuthenticationError):
        return "it rejected the bot's API key"
    if isinstance(exc, RateLimitedError):
        return "it is rate limiting cancels"
    if isinstance(exc, ServerError):
        return "it answered with a server error"
    if isinstance(exc, RunPodTransportError):
        return "it could not be reached"
    return "it answered with an error"


def duration(ms: float) -> str:
    """A duration as a member reads it: "45 seconds", "12 minutes", "3 hours", "2 days"."""
    seconds = max(1, round(ms / 1000))
    for unit, size, up_to in (("second", 1, 120), ("minute", 60, 120 * 60), ("hour", 3600, 48 * 3600)):
        if seconds < up_to:
            count = round(seconds / size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    days = round(seconds / 86400)
    return f"{days} day{'' if days == 1 else 's'}"


def _http_status(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
