"""Who may act on a job. A job belongs to its owner and to the server it was started in; a private job (delivered by
direct message) or one started in a DM belongs to its owner alone. A moderator's override applies only to jobs of the
server where they are a moderator; the bot's operator may act on any job.

The rule lives here, free of Discord, so the cogs and the command line share it: the caller says who the actor is
(where they act, whether they moderate that server, whether they run the bot).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jobs.text import N_, stored
from storage.models import TrackedJob


class Action(StrEnum):
    """What an actor wants to do with a job; the value is how a refusal says it."""

    CANCEL = N_("cancel it")
    DELETE = N_("delete its images")
    REROLL = N_("re-roll it")
    RETRY = N_("retry it")
    DELIVER = N_("deliver its images again")
    REMIX = N_("remix it")
    UPSCALE = N_("upscale its images")
    VARY = N_("vary its images")
    VIEW = N_("see it")


@dataclass(frozen=True)
class Actor:
    """Who acts: a user, the server they act from (None in a DM or on the command line), and their standing."""

    user_id: int
    guild_id: int | None = None
    # Moderates `guild_id` (its permissions or the moderator role); means nothing without a guild.
    moderator: bool = False
    # Runs the bot (BOT_OWNER_IDS, the application's owner, the command line): every job, everywhere.
    operator: bool = False


def is_private(job: TrackedJob) -> bool:
    """Whether the job belongs to its owner alone: started in a DM, or delivered by direct message."""
    return job.guild_id is None or bool(job.extra.get("private"))


def moderates(actor: Actor, job: TrackedJob) -> bool:
    """Whether the actor is a moderator of the server the job belongs to."""
    return actor.moderator and actor.guild_id is not None and not is_private(job) and actor.guild_id == job.guild_id


def may(actor: Actor, job: TrackedJob) -> bool:
    """Whether the actor may act on the job (every action follows the same rule)."""
    return actor.user_id == job.user_id or actor.operator or moderates(actor, job)


PRIVATE = stored("Job `{jid}` is private: only the member who started it can {what}.")
OWNER_OR_MODERATOR = stored("Only the member who started job `{jid}` or a moderator of its server can {what}.")
OTHER_SERVER = stored(
    "Only the member who started job `{jid}` or a moderator of its server can {what}. It was started in another "
    "server, and a moderator's override applies only to jobs of their own server."
)


def refusal(actor: Actor, job: TrackedJob, action: Action) -> str:
    """Why the actor may not act on the job, and who may, in words a member reads."""
    what = action.value
    if is_private(job):
        return PRIVATE.format(jid=job.jid, what=what)
    if actor.moderator and actor.guild_id != job.guild_id:
        return OTHER_SERVER.format(jid=job.jid, what=what)
    return OWNER_OR_MODERATOR.format(jid=job.jid, what=what)
