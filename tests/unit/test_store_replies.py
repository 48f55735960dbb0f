"""The store reads its scripts' replies by name: a reply that lacks a field fails loudly, naming it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.models import JobState, TrackedJob
from storage.store import Claimed, Reply, Reschedule, Rescheduled, StoreReplyError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JOB = TrackedJob(
    jid="j1", endpoint_id="ep", model="sdxl", user_id=1, state=JobState.QUEUED, created_at=NOW, updated_at=NOW
)


def test_reply_fields_are_read_by_name_in_any_order() -> None:
    """A reschedule's reply is decoded by its field names, not their places."""
    reply = Reply([b"token", b"1700", b"status", b"ok"], "reschedule")
    assert Reschedule(Claimed(JOB, 5), 1000).decode(reply) == Rescheduled(JOB, 1700)


def test_a_reply_missing_a_field_fails_loudly() -> None:
    """A reply without a field the store reads raises an error that names the field, instead of reading garbage."""
    with pytest.raises(StoreReplyError, match="'token'"):
        Reschedule(Claimed(JOB, 5), 1000).decode(Reply([b"status", b"ok"], "reschedule"))


def test_a_reply_that_is_no_name_value_list_fails_loudly() -> None:
    """A positional reply (an odd-length list) is refused rather than paired up wrongly."""
    with pytest.raises(StoreReplyError, match="name/value pairs"):
        Reply([1, 1700, 3], "reschedule")
