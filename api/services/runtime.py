"""What every use case works with: the database's sessions, the caches, the field cipher, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.crypto.envelope import FieldCipher
from api.services.facts import VersionCache


@dataclass(frozen=True, slots=True)
class Runtime:
    sessions: async_sessionmaker[AsyncSession]
    cache: VersionCache
    cipher: FieldCipher
    clock: Callable[[], datetime]
    key_wait_ms: int = 5_000
    reversal_window: timedelta = timedelta(days=7)
    """A code sold again this soon after a reversal freed it is flagged."""
