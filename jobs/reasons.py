"""Every reason a member or operator reads for how a job ended (or why it was not started), in one place.

Fixed texts are members of `Reason`; those that name this job's numbers are built by the functions below. The
front ends (cards, replies, the command line) show these words as they are; a translation layer words them here.
"""

from __future__ import annotations

import re
from enum import StrEnum
from http import HTTPStatus

from jobs.policy import is_sync_id
from jobs.text import N_, plural_of, stored, stored_ending, stored_n
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

    EXPIRED = N_(
        "RunPod no longer has this job, so its images are lost: RunPod deletes a job's result 30 minutes after it "
        "finishes, and deletes every job, finished or not, at its time limit."
    )
    RESULT_LOST = N_(
        "RunPod's local worker server no longer has this job, so its images are lost: that server runs a job when "
        "the bot first asks for its status and gives the result only in that one reply, which did not reach the bot "
        "(or the server was restarted)."
    )
    SYNC_EXPIRED = N_(
        "RunPod no longer has this job, so its images are lost: it was sent with /runsync (a fast model), whose "
        "result RunPod keeps only 1 minute after it finishes, and the bot could not fetch it in that time (it was "
        "restarted or stalled)."
    )
    # Ends the reason of a live job the bot gave up on.
    GAVE_UP = stored_ending(", so the bot stopped waiting for it and asked RunPod to cancel it.")
    # Ends the reason of a finished job whose images could not be fetched again.
    IMAGES_LOST = stored_ending(", so its images are lost.")
    # Added when a bad API key ended a job: the member knows whom to ask.
    FIX_THE_KEY = stored_ending(" A server admin needs to fix the bot's RunPod API key.")
    NO_IMAGE = N_("The worker finished without returning any image.")
    UNDELIVERED = N_("The result could not be delivered because of an unexpected error, logged by the bot")
    SUBMIT_UNKNOWN = N_(
        "RunPod did not confirm the job before the connection failed, so it may or may not be running. "
        "It is not tracked and was not sent again, to avoid paying twice; please submit it again if no image arrives."
    )
    # What cancelling a job on RunPod's local worker server does (it has no /cancel; it runs a job only during the
    # first status request, which answers when the job is done).
    LOCAL_CANCEL = N_(
        "RunPod's local worker server cannot cancel a job. The bot stops tracking it and posts no result: if the "
        "worker had not started it (it runs a job only when the bot first asks for its status), it never will; if it "
        "was running, it runs to its end on the worker's machine."
    )
    STOPPED_BEFORE_SENT = N_("The job was stopped before it was sent.")
    BUSY_AT_SUBMIT = N_("The bot was too busy to send it to RunPod in time. Nothing was started; please retry it.")
    UNREACHABLE_AT_SUBMIT = N_("RunPod could not be reached. Nothing was started; please try again in a minute.")
    # A worker whose safety checker withheld every image (`worker_failure_reason`).
    WORKER_NSFW = N_(
        "The model's safety checker judged the images NSFW and the worker withheld them, so it returned no image. "
        "This model refuses such images in every channel; try a different prompt or seed."
    )
    # A job that ended with no reason from RunPod.
    WORKER_FAILED = N_("The worker failed without saying why.")
    CANCELLED = N_("The job was cancelled.")
    TIMED_OUT = N_("The job ran longer than the endpoint's execution timeout.")
    ENDED = N_("The job ended.")
    # Why a /cancel did not get through (see `cancel_refusal`).
    CANCEL_UNANSWERED = N_("it did not answer in time")
    # What deadline reasons say RunPod reported (`deadline_reason`).
    STATUS_STILL_FAILING = N_("RunPod's status checks of this job were still failing")


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


# The reasons with this job's numbers, kept as English in its record: templates the front end recognises and
# translates (`jobs.text.stored`). Their English is what the command line shows.
EXPIRED_AFTER = stored(
    "RunPod no longer has this job, so its images are lost: RunPod deletes a job's result 30 minutes after it "
    "finishes, and deletes every job, finished or not, at its time limit ({duration} after it was submitted)."
)
QUEUE_WAIT = stored(
    "No GPU worker started this job within {limit} (how long this bot lets a job wait in the queue), so the bot "
    "asked RunPod to cancel it before it could run. Please try again later."
)
STILL_RUNNING = stored("RunPod still reported this job as running")
STILL_WAITING = stored("RunPod still reported this job as waiting for a worker")
PAST_DEADLINE = stored("{what} {late} after its time limit (when RunPod deletes a job whatever its state)")
PAST_DEADLINE_LIMIT = stored(
    "{what} {late} after its time limit ({limit} from submission, when RunPod deletes a job whatever its state)"
)
KEY_REJECTED = stored("RunPod kept rejecting the bot's API key (HTTP {status}) for {lasted}")
RATE_LIMITED = stored("RunPod kept refusing this job's status checks over its rate limit (HTTP 429) for {lasted}")
UNREADABLE = stored("RunPod's answers to this job's status checks could not be read for {lasted}")
UNREACHABLE = stored("RunPod could not be reached to check on this job for {lasted}")
STATUS_REFUSED = stored("RunPod kept answering {status} to this job's status checks for {lasted}")
DELIVERY_GAVE_UP = stored_n("{cause}; gave up after {n} attempt.", "{cause}; gave up after {n} attempts.")
DURATIONS = {
    "second": stored_n("{n} second", "{n} seconds"),
    "minute": stored_n("{n} minute", "{n} minutes"),
    "hour": stored_n("{n} hour", "{n} hours"),
    "day": stored_n("{n} day", "{n} days"),
}


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
    return EXPIRED_AFTER.format(duration=duration(job.ttl_ms))


def queue_wait_reason(job: TrackedJob) -> str:
    """Why a job no worker started within its queue wait limit was cancelled."""
    return QUEUE_WAIT.format(limit=duration(job.max_queue_wait_ms or 0))


def still_reported_as(running: bool) -> str:
    """What RunPod last said of a job found live past its time limit (for `deadline_reason`)."""
    return STILL_RUNNING if running else STILL_WAITING


def deadline_reason(job: TrackedJob, late_ms: float, what: str) -> str:
    """Why a job still live `late_ms` after its time limit was given up; `what` says what RunPod answered."""
    late = duration(late_ms)
    if job.ttl_ms is None:
        return PAST_DEADLINE.format(what=what, late=late) + Reason.GAVE_UP
    return PAST_DEADLINE_LIMIT.format(what=what, late=late, limit=duration(job.ttl_ms)) + Reason.GAVE_UP


def status_error_reason(kind: StatusErrorKind, exc: RunPodError, lasted_ms: float) -> str:
    """What a member reads when failed status checks end a job (no body text: it may be anything), before the
    ending that says what the bot did (`Reason.GAVE_UP` or `Reason.IMAGES_LOST`)."""
    lasted = duration(lasted_ms)
    status = exc.status if isinstance(exc, RunPodAPIError) else 0
    if kind is StatusErrorKind.AUTH:
        return KEY_REJECTED.format(status=status, lasted=lasted)
    if kind is StatusErrorKind.RATE_LIMITED:
        return RATE_LIMITED.format(lasted=lasted)
    if kind is StatusErrorKind.UNREADABLE:
        return UNREADABLE.format(lasted=lasted)
    if kind is StatusErrorKind.UNREACHABLE:
        return UNREACHABLE.format(lasted=lasted)
    return STATUS_REFUSED.format(status=_http_status(status), lasted=lasted)


def delivery_gave_up(cause: str, attempts: int) -> str:
    """Why a result was not delivered after `attempts` failed attempts."""
    return plural_of(DELIVERY_GAVE_UP, attempts, cause=cause)


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
        return CANCEL_ENDED.format(jid=jid, state=state_words(ended_as.value))
    if repeated:
        return CANCEL_REPEATED.format(jid=jid)
    if outcome is None:
        return CANCEL_SENT.format(jid=jid)
    if outcome is CancelOutcome.GONE:
        return CANCEL_GONE.format(jid=jid)
    if outcome is CancelOutcome.FINISHED:
        return CANCEL_FINISHED.format(jid=jid, state=state_words(detail) or "finished")
    if outcome is CancelOutcome.UNSUPPORTED:
        return CANCEL_LOCAL.format(jid=jid, reason=Reason.LOCAL_CANCEL.value)
    if outcome is CancelOutcome.REFUSED:
        return CANCEL_REFUSED.format(jid=jid, detail=detail)
    return CANCEL_ACCEPTED.format(jid=jid)


CANCEL_ENDED = stored("Job `{jid}` had already ended ({state}).")
CANCEL_REPEATED = stored("Job `{jid}` is already being cancelled.")
CANCEL_SENT = stored("Cancelling job `{jid}`… It is stopped as soon as RunPod confirms it has it.")
CANCEL_GONE = stored(
    "RunPod no longer knows job `{jid}` (it expired or was removed there), so there was nothing to "
    "cancel: nothing is running or billed for it, and its images, if any, are lost."
)
CANCEL_FINISHED = stored(
    "Job `{jid}` had already finished at RunPod ({state}) when the cancel arrived, so its GPU time is spent."
)
CANCEL_LOCAL = stored("Job `{jid}` is cancelled in the bot, but not stopped at the worker: {reason}")
CANCEL_REFUSED = stored(
    "RunPod refused to cancel job `{jid}` for now ({detail}). The bot asks again each time it "
    "checks the job; its card shows when it has stopped."
)
CANCEL_ACCEPTED = stored("Cancelling job `{jid}`… RunPod accepted the cancel; the card shows when it has stopped.")
# A state as `state_words` writes it, for the catalog.
STATE_WORDS = (
    N_("completed"),
    N_("failed"),
    N_("cancelled"),
    N_("timed out"),
    N_("in queue"),
    N_("in progress"),
    N_("finished"),
)
DENIED_IN_NEGATIVE = stored(
    "This server's default negative prompt holds the term “{term}”, which the deny-list refuses, so no job "
    "can start here until a moderator changes or removes that negative prompt."
)
DENIED = stored("This server doesn't allow the term “{term}” in prompts. Please rephrase.")


def denied_term_refusal(term: str, *, server_negative: bool = False) -> str:
    """Why a prompt was refused by the deny-list (the operator's or the server's), naming the term as it is listed;
    `server_negative`: the term is in the server's default negative prompt, which its moderators must change."""
    if server_negative:
        return DENIED_IN_NEGATIVE.format(term=term)
    return DENIED.format(term=term)


def submit_refusal(exc: RunPodError) -> str:
    """Why RunPod did not take a job on `/run` (nothing was started)."""
    if isinstance(exc, AuthenticationError):
        return N_("RunPod rejected the bot's API key. Nothing was started; a server admin needs to fix the key.")
    if isinstance(exc, NotFoundError):
        return N_("RunPod does not know this model's endpoint. Nothing was started; a server admin needs to check it.")
    if isinstance(exc, RateLimitedError):
        return N_("RunPod is rate limiting this endpoint. Nothing was started; please try again in a minute.")
    if isinstance(exc, BadRequestError):
        return N_("RunPod refused the request as invalid. Nothing was started.")
    return N_("RunPod answered with an error and did not accept the job; please try again later.")


def cancel_refusal(exc: RunPodError) -> str:
    """Why a `/cancel` did not get through, in a few words (no reply body: it is RunPod's, not the member's)."""
    if isinstance(exc, AuthenticationError):
        return N_("it rejected the bot's API key")
    if isinstance(exc, RateLimitedError):
        return N_("it is rate limiting cancels")
    if isinstance(exc, ServerError):
        return N_("it answered with a server error")
    if isinstance(exc, RunPodTransportError):
        return N_("it could not be reached")
    return N_("it answered with an error")


def duration(ms: float) -> str:
    """A duration as a member reads it: "45 seconds", "12 minutes", "3 hours", "2 days"."""
    seconds = max(1, round(ms / 1000))
    for unit, size, up_to in (("second", 1, 120), ("minute", 60, 120 * 60), ("hour", 3600, 48 * 3600)):
        if seconds < up_to:
            return plural_of(DURATIONS[unit], round(seconds / size))
    return plural_of(DURATIONS["day"], round(seconds / 86400))


def _http_status(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
