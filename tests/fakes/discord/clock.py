"""The fake's clock: real time plus an offset that tests move forward to expire interactions without waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DISCORD_EPOCH_MS = 1_420_070_400_000


class Clock:
    """Now, as the fake sees it. `advance` jumps forward; time never goes back."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += timedelta(seconds=seconds)
        return self.now()

    def reset(self) -> None:
        self._offset = timedelta(0)


class Snowflakes:
    """Discord ids: milliseconds since Discord's epoch in the top bits, always increasing."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0

    def now_ms(self) -> int:
        """Milliseconds since Discord's epoch, by the fake's clock."""
        return int(self._clock.now().timestamp() * 1000) - DISCORD_EPOCH_MS

    def next(self) -> int:
        self._last = max(self.now_ms() << 22, self._last + 1)
        return self._last


def iso(moment: datetime) -> str:
    """Discord's timestamp format (ISO 8601 with an explicit UTC offset)."""
    return moment.isoformat()
