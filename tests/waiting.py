"""Waiting for a condition that another component makes true (a poller, a server), with a deadline."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

DEFAULT_TIMEOUT_S = 20.0
CHECK_INTERVAL_S = 0.02


async def wait_until(predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Return once `predicate()` holds; fail with TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            outcome = predicate()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome:
                return
            # The condition belongs to code under test that offers no event to wait on: check it often.
            await asyncio.sleep(CHECK_INTERVAL_S)
