"""The per-request context every resolver receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import Info as StrawberryInfo

from api.services.facts import VersionCache
from api.settings import Settings


@dataclass(slots=True)
class Context:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    cache: VersionCache
    clock: Callable[[], datetime]


Info = StrawberryInfo[Context, None]
