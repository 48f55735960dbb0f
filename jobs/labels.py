"""The words for where a job is or how it ended: one vocabulary for Discord cards, job lists and the command line."""

from __future__ import annotations

from jobs.text import N_
from storage.models import JobState, TrackedJob

STATE_LABELS: dict[JobState, str] = {
    JobState.SUBMITTING: N_("Submitting…"),
    JobState.QUEUED: N_("Queued"),
    JobState.RUNNING: N_("Generating"),
    JobState.COMPLETED: N_("Done"),
    JobState.FAILED: N_("Failed"),
    JobState.CANCELLED: N_("Cancelled"),
    JobState.TIMED_OUT: N_("Timed out"),
    JobState.EXPIRED: N_("Result expired"),
    JobState.SUBMIT_UNKNOWN: N_("Outcome unknown"),
}
NOT_DELIVERED = N_("Not delivered")
# Shown when a record says its result was not delivered but not why (records written before the reason was kept).
UNDELIVERED = N_("The result could not be delivered.")
# Where the reason a finished job's result was not delivered is kept in the job's `extra`.
DELIVERY_FAILED_FIELD = "delivery_failed"
# Where a delivered result was posted (a channel id: the job's own, or the owner's DM when the channel refused it) and
# the seed of each posted image (None where the worker did not say), kept in the job's `extra`.
RESULT_CHANNEL_FIELD = "result_channel_id"
RESULT_SEEDS_FIELD = "result_seeds"
# The server of the channel the result was posted in (None: the owner's DM), kept in `extra`: a result may land in
# another channel of the job's server (a thread's parent, when the thread was locked meanwhile).
RESULT_GUILD_FIELD = "result_guild_id"
# The job's card started a thread of its own (whose id is the card's): its result goes there (kept in `extra`).
RESULT_THREAD_FIELD = "result_in_thread"
# How many jobs waited in the endpoint's queue when the job was submitted, when the bot knew (kept in `extra`).
QUEUE_AT_SUBMIT_FIELD = "queue_at_submit"


def delivery_failure(job: TrackedJob) -> str | None:
    """Why a finished job's result could not be delivered, or None when it was (or is yet to be)."""
    failed = job.extra.get(DELIVERY_FAILED_FIELD)
    if not failed:
        return None
    return failed if isinstance(failed, str) else UNDELIVERED


def state_label(job: TrackedJob) -> str:
    """Where the job is or how it ended, capitalised as a title ("Done", "Not delivered", "Queued")."""
    state = job.final_state
    if state is JobState.COMPLETED and delivery_failure(job):
        return NOT_DELIVERED
    return STATE_LABELS.get(state, state.value.replace("_", " ").capitalize())
