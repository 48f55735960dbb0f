"""`Writer`: coalesces a poller's store writes into one `JobStore.apply` round trip.

A write waits while any `/status` call of the poller is in flight (its outcome is probably a write of the same
cycle), but never more than `window_s`; then every pending write goes in one call. A reschedule's delay counts from
when it was decided, not from when it was written. Each write returns its op's own result type.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from jobs.tasks import BackgroundTasks
from storage.store import JobStore, Reschedule, StoreOp

R = TypeVar("R")


@dataclass(frozen=True)
class _Pending:
    op: StoreOp[Any]
    at: float
    future: asyncio.Future[Any]


class Writer:
    """Batches writes; `busy` says whether a write should wait for more, `flushed(n)` counts each flush of n ops."""

    def __init__(
        self,
        store: JobStore,
        *,
        window_s: float,
        busy: Callable[[], bool],
        flushed: Callable[[int], None],
        tasks: BackgroundTasks,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._window_s = window_s
        self._busy = busy
        self._flushed = flushed
        self._pending: list[_Pending] = []
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def write(self, op: StoreOp[R]) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append(_Pending(op, loop.time(), future))
        self.poke()
        if self._task is None or self._task.done():
            self._task = self._tasks.spawn(self._flush_all(), name="poller-writes")
        return await future

    def poke(self) -> None:
        """Something this writer waits for happened (a `/status` call ended): check again."""
        self._kick.set()

    async def _flush_all(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                deadline = self._pending[0].at + self._window_s
                while self._busy() and (remaining := deadline - loop.time()) > 0:
                    self._kick.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await self._kick.wait()
                batch, self._pending = self._pending, []
                await self._flush(batch, loop.time())
        finally:
            # Only reached with writes pending if this task was cancelled: fail them rather than hang.
            for pending in self._pending:
                if not pending.future.done():
                    pending.future.set_exception(RuntimeError("the poller's writer stopped"))
            self._pending = []

    async def _flush(self, batch: list[_Pending], now: float) -> None:
        ops = [_aged(pending.op, now - pending.at) for pending in batch]
        self._flushed(len(ops))
        try:
            results = await self._store.apply(ops)
        except Exception as exc:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)


def _aged(op: StoreOp[Any], waited_s: float) -> StoreOp[Any]:
    if isinstance(op, Reschedule) and waited_s > 0:
        return replace(op, delay_ms=max(0, round(op.delay_ms - waited_s * 1000)))
    return op
