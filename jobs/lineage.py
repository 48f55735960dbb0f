"""Jobs made from jobs: a Re-roll, a Retry, a Remix, a variation or an upscale is an ordinary job that names the job
it came from (and, for a variation or an upscale, which of its images), kept in the new job's record (`extra`), so
its result can say where it came from and later features can place it next to its parent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from storage.models import TrackedJob

# Where a job's parent is kept in its `extra`: the parent's job id, how the job was made from it, and the parent's
# image it started from (1-based; only for a variation or an upscale).
PARENT_JID_FIELD = "parent_jid"
PARENT_ACTION_FIELD = "parent_action"
PARENT_IMAGE_FIELD = "parent_image"
# An upscale's parent's model, which drew the image: an upscaled PNG's parameters name it (jobs/image_metadata.py).
PARENT_MODEL_FIELD = "parent_model"


class Derivation(StrEnum):
    """How a job was made from its parent."""

    REROLL = "reroll"
    RETRY = "retry"
    REMIX = "remix"
    VARIATION = "variation"
    UPSCALE = "upscale"


@dataclass(frozen=True)
class Parent:
    """The job a new job was made from, and how; `image` is the parent's image a variation or upscale started from."""

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
