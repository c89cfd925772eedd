"""The per-request context every resolver receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.types import Info as StrawberryInfo

from api.auth import Principal
from api.services.facts import VersionCache
from api.settings import Settings


@dataclass(frozen=True, slots=True)
class Context:
    """Built for each request from what the app's lifespan owns and the verified caller."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    cache: VersionCache
    clock: Callable[[], datetime]
    principal: Principal


Info = StrawberryInfo[Context, None]
