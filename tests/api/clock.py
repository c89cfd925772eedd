"""A clock the tests move by hand: minutes close and rate limits refill without waiting."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(second=5, microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
