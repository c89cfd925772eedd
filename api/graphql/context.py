"""The per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass

from strawberry.types import Info as StrawberryInfo

from api.auth import Principal
from api.services.runtime import Runtime
from api.settings import Settings


@dataclass(frozen=True, slots=True)
class Context:
    """Built for each request from what the app's lifespan owns and the verified caller."""

    settings: Settings
    runtime: Runtime
    principal: Principal


Info = StrawberryInfo[Context, None]
