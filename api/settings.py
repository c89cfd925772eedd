"""Settings, read from the environment once, at start-up, into a frozen value.

DATABASE_URL        sqlite+aiosqlite:///var/settle.sqlite3 (default) or postgresql+asyncpg://...
SETTLE_MODE         development (default) or production
SETTLE_DEMO_DATA    1 (default in development) loads the demo data set into an empty database
SETTLE_HOST, SETTLE_PORT    where `settle serve` listens (127.0.0.1:8000)
SETTLE_MIGRATIONS   the alembic scripts folder (default: migrations/ beside the api package)
SETTLE_KEY_WAIT_MS  how long a copy of an in-flight request waits before IN_PROGRESS (5000)
SETTLE_KEYS_DIR     trusted issuers' public keys (issuers/) and, in development, dev/ (default keys/)
SETTLE_TOKEN_AUDIENCE       the audience tokens must name (settle)
SETTLE_TOKEN_MAX_LIFETIME_SECONDS   the longest a token may live, expiry minus issue time (43200,
                            12 hours); a longer-lived token is refused like an expired one
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
SETTLE_METRICS_TOKEN        the bearer token the Prometheus scraper sends to /metrics (at least 32
                            characters; unset by default: then only an administrator's token reads
                            the metrics, which carry pool balances)
SETTLE_METRICS_POOLS_MAX    prepayment pools reported one by one on /metrics, the lowest balances
                            first (1000; every payer's total is always reported)

What one request may ask (refused with a typed error, before anything runs):
SETTLE_MAX_BODY_BYTES       a request body (262144, 256 KiB): 413 beyond
SETTLE_MAX_ADMIN_BODY_BYTES an administrator's request body, which may carry a whole reference data
                            set to `loadDocument` (33554432, 32 MiB)
SETTLE_MAX_DOCUMENT_CHARS   a GraphQL document's length (20000)
SETTLE_MAX_TOKENS           a GraphQL document's tokens (5000)
SETTLE_MAX_OPERATIONS       operations defined in one document (20)
SETTLE_MAX_STRING_CHARS     any one string of a request (10000; columns narrower still, per field)
SETTLE_MAX_CLAIM_LINES      lines of one claim (200)
SETTLE_MAX_CLAIM_DIAGNOSES  diagnoses of one claim (20)
SETTLE_CORS_ORIGINS         browser origins allowed to call the API, comma-separated
                            (https://his.hospital.example,...); none by default: same origin only
SETTLE_GZIP_MIN_BYTES       answers at least this large are gzip-compressed for clients that accept it (1024)
SETTLE_TRUSTED_DOCUMENTS    a manifest of the only documents that may run ({"sha256:<hex>": "query ..."});
                            unset (the default): any document within the limits
SETTLE_LOG_FORMAT           json (default): one JSON object per line on stderr; console: for a person
                            reading a development terminal
SETTLE_LOG_LEVEL            INFO (default), DEBUG, WARNING, ERROR

Limits against abuse (per process: each worker of `settle serve` counts on its own):
SETTLE_RATE_LIMITS              1 (default) limits requests; 0 switches every rate limit off (benchmarks)
SETTLE_RATE_TOKEN_PER_SECOND    requests a second one bearer token may make, sustained (50)
SETTLE_RATE_TOKEN_BURST         requests one token may make at once, above the sustained rate (100)
SETTLE_RATE_SOURCE_PER_SECOND   requests a second from one client address, authenticated or not (100)
SETTLE_RATE_SOURCE_BURST        requests one client address may make at once (200)
SETTLE_RATE_TRACKED_MAX         tokens and addresses tracked at once, and addresses whose refused
                                tokens are counted per minute; beyond it the least recent are forgotten
                                (and refusals are counted under the source `*`) (100000)
SETTLE_QUERY_MAX_COST       a GraphQL query's cost budget, measured before it runs (10000; see
                            api/graphql/cost.py: the full introspection query costs about 5000, a
                            page of 100 settlements with their ids 2202)
SETTLE_QUERY_MAX_DEPTH      fields on a query's longest path, introspection included (15: the
                            standard introspection query, `ofType` nested 9 times, is 15 deep)
SETTLE_QUERY_MAX_ALIASES    aliases in a query, fragments expanded (30)
SETTLE_QUERY_MAX_PAGE_SIZE  the largest `first` a paginated collection accepts (100; at most 200,
                            the settlements service's own bound)
SETTLE_SERVICE_DATE_TOLERANCE_DAYS  how many days after today (Asia/Shanghai) a claim's service
                            date may be before it is refused as SERVICE_DATE_IN_FUTURE (1)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
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


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


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
    token_max_lifetime_seconds: int = 12 * 3600
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
    max_claim_lines: int = 200
    max_claim_diagnoses: int = 20
    trusted_documents: Path | None = None
    cors_origins: tuple[str, ...] = ()
    gzip_min_bytes: int = 1024
    log_format: LogFormat = LogFormat.JSON
    log_level: str = "INFO"
    rate_limits: bool = True
    rate_token_per_second: float = 50.0
    rate_token_burst: int = 100
    rate_source_per_second: float = 100.0
    rate_source_burst: int = 200
    rate_tracked_max: int = 100_000
    query_max_cost: int = 10_000
    query_max_depth: int = 15
    query_max_aliases: int = 30
    query_max_page_size: int = 100
    service_date_tolerance_days: int = 1
    metrics_token: str | None = field(default=None, repr=False)
    metrics_pools_max: int = 1_000

    @property
    def development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    @property
    def limits(self) -> Limits:
        from api.graphql.cost import QueryLimits
        from api.graphql.execution import Limits

        return Limits(
            document_chars=self.max_document_chars,
            tokens=self.max_tokens,
            operations=self.max_operations,
            string_chars=self.max_string_chars,
            query=QueryLimits(
                max_cost=self.query_max_cost,
                max_depth=self.query_max_depth,
                max_aliases=self.query_max_aliases,
                max_page_size=self.query_max_page_size,
            ),
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
            token_max_lifetime_seconds=int(environ.get("SETTLE_TOKEN_MAX_LIFETIME_SECONDS", str(12 * 3600))),
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
            max_claim_lines=int(environ.get("SETTLE_MAX_CLAIM_LINES", "200")),
            max_claim_diagnoses=int(environ.get("SETTLE_MAX_CLAIM_DIAGNOSES", "20")),
            cors_origins=tuple(o.strip() for o in environ.get("SETTLE_CORS_ORIGINS", "").split(",") if o.strip()),
            gzip_min_bytes=int(environ.get("SETTLE_GZIP_MIN_BYTES", "1024")),
            trusted_documents=(
                Path(environ["SETTLE_TRUSTED_DOCUMENTS"]) if environ.get("SETTLE_TRUSTED_DOCUMENTS") else None
            ),
            log_format=LogFormat(environ.get("SETTLE_LOG_FORMAT", LogFormat.JSON.value)),
            log_level=environ.get("SETTLE_LOG_LEVEL", "INFO").upper(),
            rate_limits=environ.get("SETTLE_RATE_LIMITS", "1") == "1",
            rate_token_per_second=float(environ.get("SETTLE_RATE_TOKEN_PER_SECOND", "50")),
            rate_token_burst=int(environ.get("SETTLE_RATE_TOKEN_BURST", "100")),
            rate_source_per_second=float(environ.get("SETTLE_RATE_SOURCE_PER_SECOND", "100")),
            rate_source_burst=int(environ.get("SETTLE_RATE_SOURCE_BURST", "200")),
            rate_tracked_max=int(environ.get("SETTLE_RATE_TRACKED_MAX", "100000")),
            query_max_cost=int(environ.get("SETTLE_QUERY_MAX_COST", "10000")),
            query_max_depth=int(environ.get("SETTLE_QUERY_MAX_DEPTH", "15")),
            query_max_aliases=int(environ.get("SETTLE_QUERY_MAX_ALIASES", "30")),
            query_max_page_size=int(environ.get("SETTLE_QUERY_MAX_PAGE_SIZE", "100")),
            service_date_tolerance_days=_days(environ, "SETTLE_SERVICE_DATE_TOLERANCE_DAYS", "1"),
            metrics_token=_metrics_token(environ),
            metrics_pools_max=int(environ.get("SETTLE_METRICS_POOLS_MAX", "1000")),
        )


def _days(environ: Mapping[str, str], name: str, default: str) -> int:
    """A whole, non-negative number of days: anything else stops the service at start-up."""
    days = int(environ.get(name, default))
    if days < 0:
        raise ValueError(f"{name} must be a whole number of days, 0 or more, not {days}")
    return days


METRICS_TOKEN_MIN_CHARS = 32


def _metrics_token(environ: Mapping[str, str]) -> str | None:
    """A secret long enough not to be guessed; a short one stops the service at start-up."""
    token = environ.get("SETTLE_METRICS_TOKEN", "").strip() or None
    if token is not None and len(token) < METRICS_TOKEN_MIN_CHARS:
        raise ValueError(f"SETTLE_METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_CHARS} characters long")
    return token
