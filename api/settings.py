"""Settings, read from the environment once, at start-up, into a frozen value.

DATABASE_URL        sqlite+aiosqlite:///var/settle.sqlite3 (default) or postgresql+asyncpg://...
SETTLE_MODE         development (default) or production
SETTLE_DEMO_DATA    1 (default in development) loads the demo data set into an empty database
SETTLE_HOST, SETTLE_PORT    where `settle serve` listens (127.0.0.1:8000)
SETTLE_MIGRATIONS   the alembic scripts folder (default: migrations/ beside the api package)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/settle.sqlite3"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    mode: Mode = Mode.DEVELOPMENT
    demo_data: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    migrations: Path = PROJECT_ROOT / "migrations"
    key_wait_ms: int = 5_000
    keys_dir: Path = PROJECT_ROOT / "keys"
    token_audience: str = "settle"

    @property
    def development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    @property
    def postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        mode = Mode(environ.get("SETTLE_MODE", Mode.DEVELOPMENT.value))
        demo_default = "1" if mode is Mode.DEVELOPMENT else "0"
        return cls(
            database_url=environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            mode=mode,
            demo_data=environ.get("SETTLE_DEMO_DATA", demo_default) == "1",
            host=environ.get("SETTLE_HOST", "127.0.0.1"),
            port=int(environ.get("SETTLE_PORT", "8000")),
            migrations=Path(environ.get("SETTLE_MIGRATIONS", str(PROJECT_ROOT / "migrations"))),
            key_wait_ms=int(environ.get("SETTLE_KEY_WAIT_MS", "5000")),
            keys_dir=Path(environ.get("SETTLE_KEYS_DIR", str(PROJECT_ROOT / "keys"))),
            token_audience=environ.get("SETTLE_TOKEN_AUDIENCE", "settle"),
        )
