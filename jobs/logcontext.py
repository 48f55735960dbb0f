"""The job a piece of code is working on, for log records (each job is handled in its own task and context)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

current_job: ContextVar[str | None] = ContextVar("current_job", default=None)


@contextmanager
def job_context(jid: str) -> Iterator[None]:
    """Every record logged inside the block carries `jid` as its `job_id`."""
    token = current_job.set(jid)
    try:
        yield
    finally:
        current_job.reset(token)
