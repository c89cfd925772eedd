"""The application shell: health, readiness, GraphiQL only in development, demo data, the SDL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from api.app import create_app
from api.auth import DevIssuer, Role
from api.db.migrate import head_revision
from api.demo import DEMO_DRUG, DEMO_DRUG_PRICE, DEMO_HOSPITAL, DEMO_PERSON
from api.settings import PROJECT_ROOT, Mode, Settings
from tests.api.conftest import running, settings_for
from tests.api.documents import SETTLE
from tests.api.tokens import Tokens
from tests.conftest import Databases


async def test_health_and_readiness(databases: Databases, tokens: Tokens) -> None:
    url = await databases.fresh("sqlite")
    app = create_app(settings_for(url, tokens, Mode.PRODUCTION))
    async with running(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_readiness_fails_while_migrations_are_pending(tmp_path: Path, tokens: Tokens) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'behind.sqlite3'}"
    app = create_app(settings_for(url, tokens, Mode.PRODUCTION))
    async with running(app) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "migrations pending"


async def test_graphiql_is_served_in_development_only(databases: Databases, tokens: Tokens) -> None:
    for mode, expected in ((Mode.DEVELOPMENT, True), (Mode.PRODUCTION, False)):
        app = create_app(settings_for(await databases.fresh("sqlite"), tokens, mode))
        async with running(app) as client:
            page = await client.get("/graphql", headers={"accept": "text/html"})
        assert ("graphiql" in page.text.lower()) is expected, (mode, page.status_code)


async def test_with_no_configuration_the_service_starts_with_the_demo_data(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}", keys_dir=keys))
    claim = {
        "institution": DEMO_HOSPITAL,
        "serial": "DEMO-1",
        "person": DEMO_PERSON,
        "serviceDate": "2026-05-20",
        "visit": "OUTPATIENT",
        "diagnoses": ["C34.1"],
        "lines": [
            {
                "drug": DEMO_DRUG,
                "quantity": 2,
                "unitPrice": DEMO_DRUG_PRICE,
                "traceCodes": ["86124010000000000001", "86124010000000000002"],
            }
        ],
    }
    async with running(app) as client:
        token = DevIssuer.load_or_create(keys).mint(role=Role.HOSPITAL, org=DEMO_HOSPITAL, audience="settle")
        cashier = {"authorization": f"Bearer {token}"}
        response = await client.post("/graphql", json={"query": SETTLE, "variables": {"claim": claim}}, headers=cashier)
        people = await client.post(
            "/graphql", json={"query": '{ person(psnNo: "3101000000000100") { insuranceType } }'}, headers=cashier
        )
    settled = response.json()["data"]["settle"]
    assert settled["__typename"] == "Settlement", settled
    assert settled["explanation"]["total"] == "2160.00"
    assert people.json()["data"]["person"] is not None  # the hundredth insured person


def test_settle_schema_prints_the_sdl_without_a_database() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "api.cli", "schema"], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    assert "type Mutation" in completed.stdout
    assert "settle(claim: ClaimInput!): SettleResult!" in completed.stdout
    assert "scalar Yuan" in completed.stdout


def test_settle_db_and_settle_load_work_from_the_command_line(tmp_path: Path) -> None:
    environment = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}", "PATH": "/usr/bin:/bin"}
    document = tmp_path / "payers.json"
    document.write_text('{"payers": [{"code": "INS-Z", "name": "Insurer Z", "kind": "insurer"}]}', encoding="utf-8")

    def settle(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, env=environment, cwd=PROJECT_ROOT
        )

    upgraded = settle("db", "upgrade")
    loaded = settle("load", str(document))
    refused = settle("load", "-")  # empty stdin is not a document

    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == head_revision(PROJECT_ROOT / "migrations")
    assert loaded.returncode == 0 and '"payers": 1' in loaded.stdout, loaded.stderr
    assert refused.returncode == 2 and refused.stdout == ""
    assert settle("db", "downgrade", "base").stdout.strip() == "base"
