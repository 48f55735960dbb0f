"""Background tasks with an owner: each owner keeps its tasks referenced, logs their failures and stops them on close.

There is no module-global set: a task belongs to the object that started it (the poller, the Discord notifier, a
CLI command), and that object's close waits for or cancels what it started, so nothing outlives its owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundTasks:
    """Starts tasks, keeps them referenced until they end, logs their exceptions, and cancels what is left."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run `coro` in the background; an exception it raises is logged with the task's name, never lost."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: background task %s failed", self.owner, task.get_name(), exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self, timeout_s: float = 0.0) -> None:
        """Let running tasks finish for up to `timeout_s`, then cancel the rest and wait until all have ended."""
        tasks = list(self._tasks)
        if not tasks:
            return
        if timeout_s > 0:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            tasks = list(pending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
