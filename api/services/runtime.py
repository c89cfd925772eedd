"""What every use case works with: the database's sessions (opened by units of work), the caches,
the field cipher, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.crypto.envelope import FieldCipher
from api.db.references import VersionCache
from api.db.unit_of_work import RoundTrips

SERVICE_ZONE = ZoneInfo("Asia/Shanghai")
"""Where dates are reckoned: a service date, a plan year, a day's range in a filter."""


def local_date(moment: datetime) -> date:
    """The date of an aware moment (the clock runs in UTC) in Asia/Shanghai."""
    return moment.astimezone(SERVICE_ZONE).date()


@dataclass(frozen=True, slots=True)
class Runtime:
    sessions: async_sessionmaker[AsyncSession]
    cache: VersionCache
    cipher: FieldCipher
    clock: Callable[[], datetime]
    key_wait_ms: int = 5_000
    reversal_window: timedelta = timedelta(days=7)
    """A code sold again this soon after a reversal freed it is flagged."""
    service_date_tolerance_days: int = 1
    """How many days after today a claim's service date may be (a window's clock running ahead)."""
    round_trips: RoundTrips = field(default_factory=RoundTrips)
    """The database round trips of units of work, counted (api/db/unit_of_work.py)."""
