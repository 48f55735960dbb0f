"""Once per press: the same member pressing the same button of the same message again starts nothing.

Chat clients do not debounce: a double click on a button that starts a paid job sends two requests, each with its
own id, so the request-id idempotency of `JobService.submit` does not catch it. A press is held in Redis (one atomic
claim, so two processes receiving the two presses agree) while it is handled and `PRESS_WINDOW_MS` after it; a second
press meanwhile is refused and told the job the first one started. A press that started no job (refused by a quota,
a cooldown, a deny-list, a check) holds nothing once answered: the member may fix what was wrong and press again at
once. Another member, or another button, is another press.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from storage.models import Press
from storage.store import JobStore

log = logging.getLogger(__name__)

__all__ = ["PRESS_HOLD_MS", "PRESS_WINDOW_MS", "EarlierPress", "Press", "PressTicket"]

# After a press that started a job has been answered, the same press again is refused this long: enough for a double
# click, or a second press made before the first answer showed, and short enough not to stand in the way of a member
# who wants a second job.
PRESS_WINDOW_MS = 3_000
# A press still being handled holds its button at most this long: more than a submit takes (its wait for a submit
# slot and `/run`), and the bound on a hold left behind by a process that died while handling it.
PRESS_HOLD_MS = 60_000


@dataclass(frozen=True)
class EarlierPress:
    """The same press was made before and still holds its button: the job it started (None while it starts)."""

    jid: str | None


class PressTicket:
    """This press holds its button. Record the job it starts (`started`), then `end` it: held `window_ms` more when
    it started a job, released at once when it did not."""

    def __init__(self, store: JobStore, press: Press, token: str, window_ms: int) -> None:
        self.store = store
        self.press = press
        self.token = token
        self.window_ms = window_ms
        self.jid: str | None = None

    async def started(self, jid: str) -> None:
        """The press started job `jid`: a second press is told about it from now on."""
        self.jid = jid
        if not await self.store.press_started(self.press, self.token, jid):
            log.warning("press of %s by %s held past its hold; a second press may start a job", *self._who())

    async def end(self) -> None:
        """The press was answered. Never raises: a hold that cannot be ended runs out by itself."""
        try:
            await self.store.end_press(self.press, self.token, self.window_ms if self.jid is not None else 0)
        except Exception:
            log.warning("could not end the press of %s by %s; it runs out by itself", *self._who(), exc_info=True)

    def _who(self) -> tuple[str, str]:
        return self.press.button, self.press.member
