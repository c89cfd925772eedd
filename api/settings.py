"""Settings, read from the environment once, at start-up, into a frozen, validated value.

Each field's `description` is the one place a setting is documented: `settle settings` prints the
table (variable, default, what it accepts, what it does) and the README carries the same table,
kept in step by tests/api/test_settings.py.

Where values come from, strongest first: the environment (`SETTLE_<FIELD>`, and `DATABASE_URL` as
is); the env file (`SETTLE_ENV_FILE`, or else `.env` in `SETTLE_HOME` when there is one, never the
working directory's); the defaults below. `Settings(...)` itself reads nothing: tests build
settings with keyword arguments and change them with `settings.replace(field=value)`, which
validates like the environment does.

Relative paths (the SQLite file of `DATABASE_URL`, the migrations, keys, keyring, witness and
trusted-documents paths) resolve against `SETTLE_HOME`: by default the checkout the package runs
from, so that `settle db current` finds the database `settle serve` uses whatever folder it runs
in. An installed package has no checkout: then the working directory is the home, and
`notices` says so, for the command or the service to print or log loudly.

A bad value is an `InvalidSetting`, one line per setting naming its variable and what it accepts;
`settle` prints it and exits 2, and so does the app factory of uvicorn's workers.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from enum import Enum, StrEnum
from pathlib import Path
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union, cast, get_args, get_origin

from pydantic import BeforeValidator, Field, PrivateAttr, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

if TYPE_CHECKING:
    from api.graphql.execution import Limits

PREFIX = "SETTLE_"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/settle.sqlite3"
ENV_FILE_NAME = ".env"
METRICS_TOKEN_MIN_CHARS = 32
OTHER_VARIABLES = {
    "SETTLE_SERVE_STATE": "set by `settle serve` for its workers",
    "SETTLE_SERVE_WORKERS": "set by `settle serve` for its workers",
    "SETTLE_WITNESS_TOKEN": "the bearer token of `settle audit witness`, a supervisor's client",
}
"""Variables with our prefix that are not settings of the service (nor typos of one)."""
TEST_VARIABLES_PREFIX = "SETTLE_TEST_"


def _checkout() -> Path | None:
    """The checkout the package runs from (an editable install or a clone), or None for an
    installed package, which has no migrations or pyproject.toml beside it.
    """
    beside = Path(__file__).resolve().parent.parent
    return beside if (beside / "migrations").is_dir() and (beside / "pyproject.toml").is_file() else None


CHECKOUT = _checkout()
PROJECT_ROOT = CHECKOUT or Path.cwd()
"""Where the checkout's files are (tests, benchmarks, the log's short file names)."""


def default_home() -> Path:
    return CHECKOUT or Path.cwd()


def _shipped(folder: str) -> Path:
    """A folder that comes with the code (migrations, the committed issuers' keys): the
    checkout's, or for an installed package, the folder of that name under SETTLE_HOME.
    """
    return CHECKOUT / folder if CHECKOUT else Path(folder)


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


def _split(separators: str) -> BeforeValidator:
    """A list from one environment value: items between any of `separators`, blanks dropped."""

    def split(value: object) -> object:
        if isinstance(value, str):
            return tuple(item for item in re.split(f"[{re.escape(separators)}]", value) if item.strip())
        return value

    return BeforeValidator(split)


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _none_if_blank(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


PositiveInt = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(ge=0)]


class Settings(BaseSettings):
    """Every setting of the service. Field order is the documentation's order."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        frozen=True,
        extra="forbid",
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    # --- where things are ---------------------------------------------------------------------
    home: Path = Field(
        default_factory=default_home,
        description="the folder relative paths resolve against (never the working directory by accident); "
        "`.env` is read from here",
        json_schema_extra={
            "shown": "the checkout; an installed package: the working directory, said loudly",
            "accepts": "an absolute folder path",
        },
    )
    env_file: Path | None = Field(
        default=None,
        description="a file of `VARIABLE=value` lines read under the environment (the environment wins); "
        "unset: `.env` in SETTLE_HOME when it exists. Only the environment can set this and SETTLE_HOME",
        json_schema_extra={"shown": "SETTLE_HOME/.env, if it exists"},
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias="DATABASE_URL",
        description="the database: SQLite (embedded, the default; its file relative to SETTLE_HOME) or "
        "PostgreSQL (production)",
        json_schema_extra={"accepts": "sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB"},
    )
    mode: Mode = Field(
        default=Mode.DEVELOPMENT,
        description="production serves no GraphiQL, loads no demo data and does not migrate on start "
        "(run `settle db upgrade`; /readyz answers 503 until the schema is at the head revision)",
    )
    demo_data: bool = Field(
        default=True,
        description="in development, load the demo data set into an empty database on start (production never does)",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="where `settle serve` listens (--host)")
    port: int = Field(default=8000, ge=1, le=65535, description="the port `settle serve` listens on (--port)")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="`settle serve`'s worker processes (--workers); PostgreSQL only beyond one (SQLite has "
        "one writer). Rate limits and metrics are counted per worker",
    )
    migrations: Path = Field(
        default_factory=lambda: _shipped("migrations"),
        description="the alembic scripts folder (shipped with the code, so not under SETTLE_HOME by default)",
        json_schema_extra={
            "shown": "the checkout's migrations/ (installed package: SETTLE_HOME/migrations)",
            "accepts": "a folder holding alembic's env.py (relative: to SETTLE_HOME)",
        },
    )
    keys_dir: Path = Field(
        default_factory=lambda: _shipped("keys"),
        description="trusted token issuers' public keys (issuers/) and, in development, the generated dev/ "
        "issuer and keyring",
        json_schema_extra={"shown": "the checkout's keys/ (installed package: SETTLE_HOME/keys)"},
    )

    # --- tokens and keys ---------------------------------------------------------------------
    token_audience: str = Field(default="settle", min_length=1, description="the audience tokens must name")
    token_max_lifetime_seconds: PositiveInt = Field(
        default=12 * 3600,
        description="the longest a token may live, expiry minus issue time (12 hours); a longer-lived token "
        "is refused like an expired one",
    )
    cipher_suite: Literal["aes-256-gcm", "sm4-gcm"] = Field(
        default="aes-256-gcm",
        description="the field encryption's AEAD (sm4-gcm: national commercial cryptography, where the "
        "installed OpenSSL provides it)",
    )
    keyring: str = Field(
        default="file",
        pattern=r"^(file|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$",
        description="the master keys' provider: the file keyring, or the factory of a KMS/HSM provider, "
        "called with the settings",
        json_schema_extra={"accepts": "file, or module:callable"},
    )
    keyring_dir: Annotated[Path | None, BeforeValidator(_none_if_blank)] = Field(
        default=None,
        description="the file keyring's folder (keys/README.md); required in production. Unset in "
        "development: SETTLE_KEYS_DIR/dev/keyring",
    )
    values_per_data_key: PositiveInt = Field(
        default=1_000_000, description="how many values one data key encrypts before a new one is made"
    )

    # --- the audit log -----------------------------------------------------------------------
    audit_seal_seconds: Seconds = Field(
        default=1.0, description="how often the service seals new audit entries into the hash chain (0: never)"
    )
    audit_checkpoint_seconds: float = Field(
        default=10.0,
        gt=0,
        description="the longest time, while entries arrive, between two signed checkpoints of the chain: "
        "entries younger than the last checkpoint a witness holds can still vanish unnoticed",
    )
    audit_witness_dir: Annotated[str | None, BeforeValidator(_none_if_blank)] = Field(
        default=None,
        description="the file witness's folder, where the sealer appends every checkpoint; production "
        "must name one on a volume the database's administrators cannot write, or say `off`. "
        "Unset in development: SETTLE_HOME/var/audit-witness/<database>",
        json_schema_extra={"accepts": "a folder (relative: to SETTLE_HOME), or off"},
    )
    audit_witness_urls: Annotated[tuple[str, ...], NoDecode, _split(", ")] = Field(
        default=(),
        description="supervisors' witnesses that verification reads: the https URLs of their copies, "
        "served read-only (api/services/audit_witness.py)",
        json_schema_extra={"accepts": "http(s) URLs, separated by spaces or commas"},
    )

    # --- what one request may ask (refused with a typed error, before anything runs) ------------
    key_wait_ms: int = Field(
        default=5_000,
        ge=0,
        le=600_000,
        description="how long a copy of an in-flight request (the same idempotency key) waits before IN_PROGRESS",
    )
    max_body_bytes: PositiveInt = Field(default=256 * 1024, description="a request body (256 KiB): 413 beyond")
    max_admin_body_bytes: PositiveInt = Field(
        default=32 * 1024 * 1024,
        description="an administrator's request body, which may carry a whole reference data set to "
        "`loadDocument` (32 MiB)",
    )
    max_document_chars: PositiveInt = Field(default=20_000, description="a GraphQL document's length")
    max_tokens: PositiveInt = Field(default=5_000, description="a GraphQL document's tokens")
    max_operations: PositiveInt = Field(default=20, description="operations defined in one document")
    max_string_chars: PositiveInt = Field(
        default=10_000, description="any one string of a request (columns narrower still, per field)"
    )
    max_claim_lines: PositiveInt = Field(default=200, description="lines of one claim")
    max_claim_diagnoses: PositiveInt = Field(default=20, description="diagnoses of one claim")
    query_max_cost: PositiveInt = Field(
        default=10_000,
        description="a GraphQL query's cost budget, measured before it runs (api/graphql/cost.py: the full "
        "introspection query costs about 5000, a page of 100 settlements with their ids 2202)",
    )
    query_max_depth: PositiveInt = Field(
        default=15,
        description="fields on a query's longest path, introspection included (the standard introspection "
        "query, `ofType` nested 9 times, is 15 deep)",
    )
    query_max_aliases: int = Field(default=30, ge=0, description="aliases in a query, fragments expanded")
    query_max_page_size: int = Field(
        default=100,
        ge=1,
        le=200,
        description="the largest `first` a paginated collection accepts (at most 200, the settlements "
        "service's own bound)",
    )
    service_date_tolerance_days: int = Field(
        default=1,
        ge=0,
        description="how many days after today (Asia/Shanghai) a claim's service date may be before it is "
        "refused as SERVICE_DATE_IN_FUTURE",
    )
    reuse_window_days: float = Field(
        default=7.0, ge=0, description="a traceability code sold again within this many days of a reversal is flagged"
    )

    # --- the HTTP edge ------------------------------------------------------------------------
    cors_origins: Annotated[tuple[str, ...], NoDecode, _split(",")] = Field(
        default=(),
        description="browser origins allowed to call the API (e.g. https://his.hospital.example); none: "
        "same origin only",
        json_schema_extra={"accepts": "origins (scheme://host[:port]), comma-separated"},
    )
    gzip_min_bytes: int = Field(
        default=1024, ge=0, description="answers at least this large are gzip-compressed for clients that accept it"
    )
    trusted_documents: Annotated[Path | None, BeforeValidator(_none_if_blank)] = Field(
        default=None,
        description='a manifest of the only documents that may run ({"sha256:<hex>": "query ..."}); unset: '
        "any document within the limits",
    )

    # --- logs and metrics ---------------------------------------------------------------------
    log_format: LogFormat = Field(
        default=LogFormat.JSON,
        description="json: one JSON object per line on stderr; console: for a person reading a development terminal",
    )
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = Field(
        default="INFO", description="the lowest level logged (libraries that log values stay at WARNING)"
    )
    metrics_token: Annotated[str | None, BeforeValidator(_none_if_blank)] = Field(
        default=None,
        repr=False,
        description="the bearer token the Prometheus scraper sends to /metrics (e.g. `openssl rand -hex 32`); "
        "unset: only an administrator's token reads the metrics, which carry pool balances",
        json_schema_extra={"accepts": f"a secret of at least {METRICS_TOKEN_MIN_CHARS} characters", "secret": True},
    )
    metrics_pools_max: int = Field(
        default=1_000,
        ge=0,
        description="prepayment pools reported one by one on /metrics, the lowest balances first (every "
        "payer's total is always reported)",
    )

    # --- limits against abuse (per process: each worker counts on its own) ----------------------
    rate_limits: bool = Field(default=True, description="false switches every rate limit off (benchmarks)")
    rate_token_per_second: float = Field(
        default=50.0, gt=0, description="requests a second one bearer token may make, sustained"
    )
    rate_token_burst: PositiveInt = Field(
        default=100, description="requests one token may make at once, above the sustained rate"
    )
    rate_source_per_second: float = Field(
        default=100.0, gt=0, description="requests a second from one client address, authenticated or not"
    )
    rate_source_burst: PositiveInt = Field(default=200, description="requests one client address may make at once")
    rate_tracked_max: PositiveInt = Field(
        default=100_000,
        description="tokens and addresses tracked at once, and addresses whose refused tokens are counted per "
        "minute; beyond it the least recent are forgotten (and refusals are counted under the source `*`)",
    )

    _notices: tuple[str, ...] = PrivateAttr(default=())

    # --- validation -----------------------------------------------------------------------------

    @field_validator("home")
    @classmethod
    def _home_is_absolute(cls, home: Path) -> Path:
        if not home.is_absolute():
            raise ValueError("a relative path")
        return home

    @field_validator("env_file", "migrations", "keys_dir", "keyring_dir", "trusted_documents")
    @classmethod
    def _under_home(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return None if path is None else _resolve(path, info)

    @field_validator("migrations")
    @classmethod
    def _alembic_scripts(cls, folder: Path) -> Path:
        if not (folder / "env.py").is_file():
            raise ValueError(f"no env.py in {folder}")
        return folder

    @field_validator("audit_witness_dir")
    @classmethod
    def _witness_under_home(cls, folder: str | None, info: ValidationInfo) -> str | None:
        return folder if folder is None or folder == "off" else str(_resolve(Path(folder), info))

    @field_validator("database_url")
    @classmethod
    def _database(cls, url: str, info: ValidationInfo) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError("not a database URL") from None
        if (parsed.get_backend_name(), parsed.get_driver_name()) not in {
            ("sqlite", "aiosqlite"),
            ("postgresql", "asyncpg"),
        }:
            raise ValueError("an unsupported database or driver")
        file = parsed.database
        if parsed.get_backend_name() != "sqlite" or not file or file == ":memory:" or file.startswith("file:"):
            return url
        if Path(file).is_absolute():
            return url
        return parsed.set(database=str(_resolve(Path(file), info))).render_as_string(hide_password=False)

    @field_validator("audit_witness_urls")
    @classmethod
    def _urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        urls = tuple(url.strip() for url in urls)
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"not an http(s) URL: {url}")
        return urls

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        origins = tuple(origin.strip() for origin in origins)
        for origin in origins:
            if not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ValueError(f"not an origin: {origin}")
        return origins

    @field_validator("metrics_token")
    @classmethod
    def _secret_enough(cls, token: str | None) -> str | None:
        """A secret long enough not to be guessed; a short one stops the service at start-up."""
        token = token.strip() if token is not None else None
        if token is not None and len(token) < METRICS_TOKEN_MIN_CHARS:
            raise ValueError("too short")
        return token

    # --- reading ----------------------------------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The constructor takes its arguments and the defaults, nothing else: `from_environment`
        is where the environment and the env file are read.
        """
        return (init_settings,)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings of `environ` (default: this process's environment) over its env file's.
        Raises InvalidSetting naming each bad variable and what it accepts.
        """
        environ = os.environ if environ is None else environ
        env_file = _env_file(environ)
        from_file = _read_env_file(env_file) if env_file else {}
        variables = {**from_file, **environ}
        if env_file is not None:
            variables["SETTLE_ENV_FILE"] = str(env_file)
        values = _Variables(cls, variables)()
        try:
            settings = cls(**values)
        except ValidationError as error:
            where = {name.upper(): f" in {env_file}" for name in from_file if name not in environ}
            raise InvalidSetting.of(error, variables, where) from None
        settings._notices = _notices(settings, environ, variables)
        return settings

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes`, validated as the environment's values are (unlike model_copy)."""
        return self.model_validate({**self.model_dump(), **changes})

    # --- what the rest of the service reads -----------------------------------------------------

    @property
    def notices(self) -> tuple[str, ...]:
        """What an operator should see at start-up: a guessed home, variables that are no setting."""
        return self._notices

    @property
    def development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    @property
    def postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file (absolute), or None for PostgreSQL or an in-memory database."""
        if self.postgresql:
            return None
        from sqlalchemy.engine import make_url

        file = make_url(self.database_url).database
        return Path(file) if file and file != ":memory:" and not file.startswith("file:") else None

    @property
    def var_dir(self) -> Path:
        """The development data folder (the default SQLite file lives there too)."""
        return self.home / "var"

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


def _resolve(path: Path, info: ValidationInfo) -> Path:
    home = info.data.get("home")
    return path if path.is_absolute() or home is None else home / path


# --- where the values come from -------------------------------------------------------------------


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (the process's environment
    merged with the env file, or a test's dict) instead of os.environ.
    """

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._variables.items() if value != ""}


def _env_file(environ: Mapping[str, str]) -> Path | None:
    """SETTLE_ENV_FILE (relative: to SETTLE_HOME), which must exist; or else SETTLE_HOME/.env if
    it exists. The working directory's `.env` is never read unless the working directory is the
    home.
    """
    home = Path(environ.get("SETTLE_HOME") or default_home())
    if not home.is_absolute():
        raise InvalidSetting([("SETTLE_HOME", _shown(environ["SETTLE_HOME"]), accepts("home"))])
    named = environ.get("SETTLE_ENV_FILE", "").strip()
    if not named:
        found = home / ENV_FILE_NAME
        return found if found.is_file() else None
    path = home / named
    if not path.is_file():
        raise InvalidSetting([("SETTLE_ENV_FILE", _shown(named), f"an existing file (no file at {path})")])
    return path


def _read_env_file(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    read = dotenv_values(path, encoding="utf-8")
    for name in ("SETTLE_HOME", "SETTLE_ENV_FILE"):
        if name in read:
            raise InvalidSetting([(name, f" (in {path})", "the environment only, not an env file")])
    return {name: value for name, value in read.items() if value is not None}


def _notices(settings: Settings, environ: Mapping[str, str], variables: Mapping[str, str]) -> tuple[str, ...]:
    notices: list[str] = []
    if CHECKOUT is None and not environ.get("SETTLE_HOME"):
        notices.append(
            f"SETTLE_HOME is not set and the package runs from no checkout: relative paths (the SQLite "
            f"file, keys, migrations) resolve against the working directory, {settings.home}; set "
            f"SETTLE_HOME to make that choice explicit"
        )
    known = set(variable_names().values()) | set(OTHER_VARIABLES)
    for name in sorted(variables):
        upper = name.upper()
        if upper.startswith(PREFIX) and not upper.startswith(TEST_VARIABLES_PREFIX) and upper not in known:
            notices.append(f"{name} is not a setting and is ignored (`settle settings` lists them)")
    return tuple(notices)


# --- errors -----------------------------------------------------------------------------------------


class InvalidSetting(ValueError):
    """One or more settings whose values are not accepted: one line each, naming the variable,
    the value (hidden for secrets) and what it accepts.
    """

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        self.variables = [variable for variable, _, _ in problems]
        super().__init__(
            "\n".join(f"bad setting {variable}{shown}: expected {expected}" for variable, shown, expected in problems)
        )

    @classmethod
    def of(
        cls, error: ValidationError, variables: Mapping[str, str], where: Mapping[str, str] | None = None
    ) -> InvalidSetting:
        """The problems of `error`, by variable; `where` says which came from the env file."""
        names = variable_names()
        by_variable = {name.upper(): value for name, value in variables.items()}
        problems: list[tuple[str, str, str]] = []
        for detail in error.errors():
            field = _field_of(str(detail["loc"][0]) if detail["loc"] else "")
            variable = names.get(field, str(detail["loc"][0]) if detail["loc"] else "?")
            if any(variable == seen for seen, _, _ in problems):
                continue
            value = by_variable.get(variable)
            shown = " (value hidden)" if _secret(field) else ("" if value is None else _shown(value))
            shown += (where or {}).get(variable, "")
            expected = accepts(field) if field in Settings.model_fields else "no such setting"
            if detail["type"] == "value_error" and not _secret(field):  # our validators say what they found
                expected += f"; {detail['ctx']['error']}"
            problems.append((variable, shown, expected))
        return cls(problems)


def _field_of(key: str) -> str:
    for name, field in Settings.model_fields.items():
        if key == name or (isinstance(field.validation_alias, str) and key == field.validation_alias):
            return name
    return key


def _shown(value: str) -> str:
    """A refused value as an error line quotes it: a URL's password hidden, a long value cut."""
    hidden = _without_password(value)
    return "=" + repr(hidden if len(hidden) <= 60 else hidden[:57] + "...")


def _without_password(value: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)


def _secret(field: str) -> bool:
    info = Settings.model_fields.get(field)
    extra = info.json_schema_extra if info is not None else None
    return isinstance(extra, dict) and extra.get("secret") is True


# --- documentation: one table from the fields -----------------------------------------------------


def variable_names() -> dict[str, str]:
    """Each field's environment variable."""
    return {
        name: field.validation_alias if isinstance(field.validation_alias, str) else f"{PREFIX}{name.upper()}"
        for name, field in Settings.model_fields.items()
    }


def accepts(name: str) -> str:
    """What a field accepts, in words, from its type and bounds (or as it says itself)."""
    field = Settings.model_fields[name]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("accepts"), str):
        return str(extra["accepts"])
    return _describe(field)


def _describe(field: FieldInfo) -> str:
    annotation = field.annotation
    optional = False
    if get_origin(annotation) in (Union, UnionType):
        members = [member for member in get_args(annotation) if member is not NoneType]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0]
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    bounds = {  # pydantic's constraints (annotated_types' Ge, Gt, Le) by their attribute
        bound: getattr(item, bound) for item in field.metadata for bound in ("ge", "gt", "le") if hasattr(item, bound)
    }
    if annotation is bool:
        words = "true or false (also 1/0, yes/no, on/off)"
    elif annotation is int or annotation is float:
        words = _number("a whole number" if annotation is int else "a number", bounds)
    elif get_origin(annotation) is Literal:
        words = "one of " + ", ".join(str(choice) for choice in get_args(annotation))
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        words = "one of " + ", ".join(str(member.value) for member in annotation)
    elif annotation is Path:
        words = "a path (relative: to SETTLE_HOME)"
    else:
        words = "text"
    return f"{words}; empty: unset" if optional else words


def _number(kind: str, bounds: dict[str, Any]) -> str:
    low = bounds.get("ge")
    high = bounds.get("le")
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    if "gt" in bounds:
        above = bounds["gt"]
        return f"{kind}, {above + 1} or more" if kind == "a whole number" else f"{kind} greater than {above}"
    if low is not None:
        return f"{kind}, {low} or more"
    return kind


def setting_value(name: str, text: str) -> Any:
    """`text` checked as the setting `name` is (a command-line option standing for it); ValueError
    when it is not accepted.
    """
    field = Settings.model_fields[name]
    annotated: Any = cast(Any, Annotated)[(field.annotation, *field.metadata)]
    return TypeAdapter(annotated).validate_python(text)


def values_in_force(settings: Settings) -> dict[str, str]:
    """Each variable and the value these settings hold, as an operator would write it; secrets
    and a database password hidden.
    """
    shown: dict[str, str] = {}
    for name, variable in variable_names().items():
        value = getattr(settings, name)
        if value is None:
            text = ""
        elif _secret(name):
            text = "(hidden)"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, Enum):
            text = str(value.value)
        elif isinstance(value, tuple):
            text = ",".join(value)
        else:
            text = str(value)
        shown[variable] = _without_password(text) if name == "database_url" else text
    return shown


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown"), str):
        return str(extra["shown"])
    value = field.get_default(call_default_factory=False)
    if value is None or value == ():
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def settings_table() -> str:
    """The settings as a Markdown table: `settle settings` prints it and the README holds it."""
    rows = ["| variable | default | accepts | what |", "| --- | --- | --- | --- |"]
    for name, variable in variable_names().items():
        description = Settings.model_fields[name].description or ""
        cells = (f"`{variable}`", _code(_default(name)), accepts(name), description)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def _code(text: str) -> str:
    return text if text.startswith(("(", "the ", "SETTLE_")) else f"`{text}`"
