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
SETTLE_AUDIT_CHECKPOINT_SECONDS   the longest time, while entries arrive, between two signed
                            checkpoints of the chain (10): entries younger than the last checkpoint a
                            witness holds can still vanish unnoticed
SETTLE_AUDIT_WITNESS_DIR    the folder of the file witness, where the sealer appends every checkpoint
                            (var/audit-witness in development; production must name one, on a volume
                            the database's administrators cannot write, or say `off`)
SETTLE_AUDIT_WITNESS_URLS   supervisors' witnesses that verification reads (space- or comma-separated
                            https URLs of their copies, served read-only; see api/services/audit_witness.py)
SETTLE_WORKERS              `settle serve` worker processes (1; PostgreSQL only beyond one)
SETTLE_REUSE_WINDOW_DAYS    a code sold again within this many days of a reversal is flagged (7)

What one request may ask (refused with a typed error, before anything runs):
SETTLE_MAX_BODY_BYTES       a request body (262144, 256 KiB): 413 beyond
SETTLE_MAX_ADMIN_BODY_BYTES an administrator's request body, which may carry a whole reference data
                            set to `loadDocument` (33554432, 32 MiB)
SETTLE_MAX_DOCUMENT_CHARS   a GraphQL document's length (20000)
SETTLE_MAX_TOKENS           a GraphQL document's tokens (5000)
SETTLE_MAX_OPERATIONS       operations defined in one document (20)
SETTLE_MAX_STRING_CHARS     any one string of a request (10000; columns narrower still, per field)
SETTLE_MAX_DEPTH            a query's depth, introspection included (12)
SETTLE_MAX_ALIASES          aliases in one query (30)
SETTLE_MAX_CLAIM_LINES      lines of one claim (200)
SETTLE_MAX_CLAIM_DIAGNOSES  diagnoses of one claim (20)
SETTLE_TRUSTED_DOCUMENTS    a manifest of the only documents that may run ({"sha256:<hex>": "query ..."});
                            unset (the default): any document within the limits
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.graphql.execution import Limits

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
    audit_checkpoint_seconds: float = 10.0
    audit_witness_dir: str | None = None
    audit_witness_urls: tuple[str, ...] = ()
    workers: int = 1
    reuse_window_days: float = 7.0
    max_body_bytes: int = 256 * 1024
    max_admin_body_bytes: int = 32 * 1024 * 1024
    max_document_chars: int = 20_000
    max_tokens: int = 5_000
    max_operations: int = 20
    max_string_chars: int = 10_000
    max_depth: int = 12
    max_aliases: int = 30
    max_claim_lines: int = 200
    max_claim_diagnoses: int = 20
    trusted_documents: Path | None = None

    @property
    def development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    @property
    def limits(self) -> Limits:
        from api.graphql.execution import Limits

        return Limits(
            document_chars=self.max_document_chars,
            tokens=self.max_tokens,
            operations=self.max_operations,
            string_chars=self.max_string_chars,
            max_depth=self.max_depth,
            max_aliases=self.max_aliases,
            production=not self.development,
        )

    @property
    def var_dir(self) -> Path:
        """The development data folder (the default SQLite file lives there too)."""
        return Path("var")

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
            audit_checkpoint_seconds=float(environ.get("SETTLE_AUDIT_CHECKPOINT_SECONDS", "10")),
            audit_witness_dir=environ.get("SETTLE_AUDIT_WITNESS_DIR") or None,
            audit_witness_urls=tuple(environ.get("SETTLE_AUDIT_WITNESS_URLS", "").replace(",", " ").split()),
            workers=int(environ.get("SETTLE_WORKERS", "1")),
            reuse_window_days=float(environ.get("SETTLE_REUSE_WINDOW_DAYS", "7")),
            max_body_bytes=int(environ.get("SETTLE_MAX_BODY_BYTES", str(256 * 1024))),
            max_admin_body_bytes=int(environ.get("SETTLE_MAX_ADMIN_BODY_BYTES", str(32 * 1024 * 1024))),
            max_document_chars=int(environ.get("SETTLE_MAX_DOCUMENT_CHARS", "20000")),
            max_tokens=int(environ.get("SETTLE_MAX_TOKENS", "5000")),
            max_operations=int(environ.get("SETTLE_MAX_OPERATIONS", "20")),
            max_string_chars=int(environ.get("SETTLE_MAX_STRING_CHARS", "10000")),
            max_depth=int(environ.get("SETTLE_MAX_DEPTH", "12")),
            max_aliases=int(environ.get("SETTLE_MAX_ALIASES", "30")),
            max_claim_lines=int(environ.get("SETTLE_MAX_CLAIM_LINES", "200")),
            max_claim_diagnoses=int(environ.get("SETTLE_MAX_CLAIM_DIAGNOSES", "20")),
            trusted_documents=(
                Path(environ["SETTLE_TRUSTED_DOCUMENTS"]) if environ.get("SETTLE_TRUSTED_DOCUMENTS") else None
            ),
        )
