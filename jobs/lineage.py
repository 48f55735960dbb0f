"""Jobs made from jobs: a Re-roll, a Retry, a Remix or a variation is an ordinary job that names the job it came
from (and, for a variation, which of its images), kept in the new job's record (`extra`), so its result can say
where it came from and later features can place it next to its parent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from storage.models import TrackedJob

# Where a job's parent is kept in its `extra`: the parent's job id, how the job was made from it, and the parent's
# image it started from (1-based; only for a variation).
PARENT_JID_FIELD = "parent_jid"
PARENT_ACTION_FIELD = "parent_action"
PARENT_IMAGE_FIELD = "parent_image"


class Derivation(StrEnum):
    """How a job was made from its parent."""

    REROLL = "reroll"
    RETRY = "retry"
    REMIX = "remix"
    VARIATION = "variation"


@dataclass(frozen=True)
class Parent:
    """The job a new job was made from, and how; `image` is the parent's image a variation started from."""

    jid: str
    how: Derivation
    image: int | None = None

    def as_extra(self) -> dict[str, Any]:
        """The fields a new job's `extra` keeps about its parent."""
        extra: dict[str, Any] = {PARENT_JID_FIELD: self.jid, PARENT_ACTION_FIELD: self.how.value}
        if self.image is not None:
            extra[PARENT_IMAGE_FIELD] = self.image
        return extra


def parent_of(job: TrackedJob) -> Parent | None:
    """The job's parent as recorded, or None (a job of its own, or one recorded before parents were kept)."""
    jid = job.extra.get(PARENT_JID_FIELD)
    how = job.extra.get(PARENT_ACTION_FIELD)
    if not isinstance(jid, str) or how not in set(Derivation):
        return None
    image = job.extra.get(PARENT_IMAGE_FIELD)
    return Parent(jid, Derivation(how), image if isinstance(image, int) else None)
