"""Settings, read from the environment once, at start-up, into a frozen value.

DATABASE_URL        sqlite+aiosqlite:///var/settle.sqlite3 (default) or postgresql+asyncpg://...
SETTLE_MODE         development (default) or production
SETTLE_DEMO_DATA    1 (default in development) loads the demo data set into an empty database
SETTLE_HOST, SETTLE_PORT    where `settle serve` listens (127.0.0.1:8000)
SETTLE_MIGRATIONS   the alembic scripts folder (default: migrations/ beside the api package)
SETTLE_KEY_WAIT_MS  how long a copy of an in-flight request waits before IN_PROGRESS (5000)
SETTLE_KEYS_DIR     trusted issuers' public keys (issuers/) and, in development, dev/ (default keys/)
SETTLE_TOKEN_AUDIENCE       the audience tokens must name (settle)
SETTLE_CIPHER_SUITE         aes-256-gcm (default) or sm4-gcm (national commercial cryptography)
SETTLE_KEYRING              file (default) or module:callable, the factory of a KMS/HSM provider
SETTLE_KEYRING_DIR          the file keyring's folder (default keys/dev/keyring in development;
                            required in production)
SETTLE_VALUES_PER_DATA_KEY  how many values one data key encrypts before a new one (1000000)
SETTLE_AUDIT_SEAL_SECONDS   how often the service seals new audit entries into the chain (1; 0: never)
SETTLE_WORKERS              `settle serve` worker processes (1; PostgreSQL only beyond one)
SETTLE_REUSE_WINDOW_DAYS    a code sold again within this many days of a reversal is flagged (7)
SETTLE_SERVICE_DATE_TOLERANCE_DAYS  how many days after today (Asia/Shanghai) a claim's service
                            date may be before it is refused as SERVICE_DATE_IN_FUTURE (1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/settle.sqlite3"


def _project_root() -> Path:
    """The checkout the package runs from; for an installed (non-editable) package, which has
    no migrations beside it, the working directory (set SETTLE_MIGRATIONS and SETTLE_KEYS_DIR
    explicitly in that case, as the Dockerfile does).
    """
    beside = Path(__file__).resolve().parent.parent
    return beside if (beside / "migrations").is_dir() else Path.cwd()


PROJECT_ROOT = _project_root()


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
    cipher_suite: str = "aes-256-gcm"
    keyring: str = "file"
    keyring_dir: Path | None = None
    values_per_data_key: int = 1_000_000
    audit_seal_seconds: float = 1.0
    workers: int = 1
    reuse_window_days: float = 7.0
    service_date_tolerance_days: int = 1

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
            cipher_suite=environ.get("SETTLE_CIPHER_SUITE", "aes-256-gcm"),
            keyring=environ.get("SETTLE_KEYRING", "file"),
            keyring_dir=Path(environ["SETTLE_KEYRING_DIR"]) if environ.get("SETTLE_KEYRING_DIR") else None,
            values_per_data_key=int(environ.get("SETTLE_VALUES_PER_DATA_KEY", "1000000")),
            audit_seal_seconds=float(environ.get("SETTLE_AUDIT_SEAL_SECONDS", "1")),
            workers=int(environ.get("SETTLE_WORKERS", "1")),
            reuse_window_days=float(environ.get("SETTLE_REUSE_WINDOW_DAYS", "7")),
            service_date_tolerance_days=_days(environ, "SETTLE_SERVICE_DATE_TOLERANCE_DAYS", "1"),
        )


def _days(environ: Mapping[str, str], name: str, default: str) -> int:
    """A whole, non-negative number of days: anything else stops the service at start-up."""
    days = int(environ.get(name, default))
    if days < 0:
        raise ValueError(f"{name} must be a whole number of days, 0 or more, not {days}")
    return days
