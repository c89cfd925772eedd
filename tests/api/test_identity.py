"""Bearer tokens, sensitive fields, and the audit log of writes and denied attempts."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from api.app import create_app
from api.auth import Unauthenticated
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.settings import PROJECT_ROOT, Mode
from tests.api.clock import Clock
from tests.api.conftest import Service, running, settings_for
from tests.api.documents import CAR_T, HOSPITAL, MEMBER, SETTLE, claim
from tests.api.tokens import ISSUER, KEY_ID, Tokens
from tests.conftest import Databases

PROBE = '{ institution(code: "H310003") { code } }'


def unsigned(tokens: Tokens) -> str:
    """An `alg: none` token carrying perfectly good claims."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': KEY_ID})}.{part(tokens.claims('admin', 'NHSA-OPS'))}."


def refused_tokens(tokens: Tokens) -> dict[str, str]:
    now = int(time.time())
    return {
        "expired": tokens.mint("hospital", HOSPITAL, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "not yet valid": tokens.mint("hospital", HOSPITAL, nbf=now + 3600, exp=now + 7200),
        "unsigned (alg none)": unsigned(tokens),
        "wrongly signed": tokens.mint("hospital", HOSPITAL, key=Ed25519PrivateKey.generate()),
        "wrong audience": tokens.mint("hospital", HOSPITAL, aud="another-service"),
        "unknown issuer": tokens.mint("hospital", HOSPITAL, iss="https://idp.elsewhere.example"),
        "unknown key id": tokens.mint("hospital", HOSPITAL, kid="retired-key"),
        "unknown role": tokens.mint("janitor", HOSPITAL),
        "no token id": jwt.encode(
            {k: v for k, v in tokens.claims("hospital", HOSPITAL).items() if k != "jti"},
            tokens.private_key,
            algorithm="EdDSA",
            headers={"kid": KEY_ID},
        ),
        "not a token": "hello",
        "valid for a hundred years": tokens.mint("hospital", HOSPITAL, exp=now + 100 * 365 * 86400),
        "valid for 12 hours and a minute": tokens.mint("hospital", HOSPITAL, iat=now, exp=now + 12 * 3600 + 60),
        "no issue time": jwt.encode(
            {k: v for k, v in tokens.claims("hospital", HOSPITAL).items() if k != "iat"},
            tokens.private_key,
            algorithm="EdDSA",
            headers={"kid": KEY_ID},
        ),
    }


async def audit_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            table = models.AuditEntry.__table__
            rows = await session.execute(select(table).order_by(table.c.occurred_at, table.c.id))
            return [dict(row) for row in rows.mappings()]
    finally:
        await engine.dispose()


async def test_every_bad_token_gets_401_with_one_message_that_names_no_check(database_url: str, tokens: Tokens) -> None:
    clock = Clock()
    app = create_app(settings_for(database_url, tokens), clock=clock)
    async with running(app) as client:
        responses = {
            name: await client.post("/graphql", json={"query": PROBE}, headers={"authorization": f"Bearer {token}"})
            for name, token in refused_tokens(tokens).items()
        }
        missing = await client.post("/graphql", json={"query": PROBE})
        cashier = {"authorization": f"Bearer {tokens.hospital}"}
        accepted = await client.post("/graphql", json={"query": PROBE}, headers=cashier)
        clock.advance(minutes=1)
        await app.state.refusals.flush()

    for name, response in [*responses.items(), ("missing", missing)]:
        assert response.status_code == 401, name
        assert response.json() == {
            "errors": [{"message": Unauthenticated.MESSAGE, "extensions": {"code": "UNAUTHENTICATED"}}]
        }, name
    assert accepted.status_code == 200
    refusals = [row for row in await audit_rows(database_url) if row["outcome"] == "unauthenticated"]
    assert [row["detail"]["count"] for row in refusals] == [len(responses) + 1]  # one row for the minute
    assert all(row["subject"] is None and row["token_id"] is None for row in refusals)  # nothing unverified is taken
    assert len(refusals[0]["detail"]["claimedTokenIds"]) >= 8  # the token ids they claimed, for an investigator


async def test_the_development_issuer_is_trusted_in_development_only(databases: Databases, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    environment = {**os.environ, "SETTLE_KEYS_DIR": str(keys), "SETTLE_MODE": "development"}
    minted = subprocess.run(
        [sys.executable, "-m", "api.cli", "token", "--role", "hospital", "--org", HOSPITAL],
        capture_output=True,
        text=True,
        env=environment,
        cwd=PROJECT_ROOT,
        check=True,
    ).stdout.strip()
    assert (keys / "dev" / "issuer.json").stat().st_mode & 0o777 == 0o600
    header = {"authorization": f"Bearer {minted}"}
    tokens = Tokens(keys, Ed25519PrivateKey.generate())
    (keys / "issuers").mkdir()

    answers = {}
    for mode in (Mode.DEVELOPMENT, Mode.PRODUCTION):
        app = create_app(settings_for(await databases.fresh("sqlite"), tokens, mode))
        async with running(app) as client:
            answers[mode] = (await client.post("/graphql", json={"query": PROBE}, headers=header)).status_code
    refused = subprocess.run(
        [sys.executable, "-m", "api.cli", "token", "--role", "admin", "--org", "X"],
        capture_output=True,
        text=True,
        env={**environment, "SETTLE_MODE": "production"},
        cwd=PROJECT_ROOT,
    )
    assert answers == {Mode.DEVELOPMENT: 200, Mode.PRODUCTION: 401}
    assert refused.returncode == 1 and refused.stdout == ""


def test_an_issuer_file_holding_a_private_key_is_refused(tmp_path: Path) -> None:
    from jwt.algorithms import OKPAlgorithm

    from api.auth import load_trusted_keys

    private = json.loads(OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate()))
    (tmp_path / "leaky.json").write_text(
        json.dumps({"issuer": ISSUER, "keys": [{**private, "kid": "k", "alg": "EdDSA"}]})
    )
    with pytest.raises(ValueError, match="private key"):
        load_trusted_keys(tmp_path)


PERSON = f'query {{ person(psnNo: "{MEMBER}") {{ psnNo name idNumber }} }}'
PRICES = """query { commercialCatalogue(region: "310100", onDate: "2026-06-01") {
  drug insurer settlementPrice { value disclosure } } }"""


async def fields(caller: Service, query: str, field: str) -> tuple[Any, set[str]]:
    body = (await caller.post(query)).json()
    codes = {(error.get("extensions") or {}).get("code") for error in body.get("errors") or []}
    return body["data"][field], codes


async def test_personal_data_is_shown_only_to_roles_that_need_it(service: Service) -> None:
    hospital, hospital_codes = await fields(service, PERSON, "person")
    supervisor, supervisor_codes = await fields(service.as_(service.tokens.supervisor()), PERSON, "person")

    assert (hospital["name"], hospital["idNumber"], hospital_codes) == ("Zhang Wei", None, {"FORBIDDEN"})
    assert (supervisor["idNumber"], supervisor_codes) == ("310101198001010012", set())


async def test_a_confidential_price_is_clear_for_its_insurer_and_price_auditors_and_masked_for_others(
    service: Service,
) -> None:
    tokens = service.tokens
    readers = {
        "INS-A": service.as_(tokens.payer("insurer", "INS-A")),
        "supervisor": service.as_(tokens.supervisor()),
        "auditor": service.as_(tokens.supervisor(grants=("price_audit",))),
        "admin": service.as_(tokens.admin),
    }
    seen = {name: await fields(caller, PRICES, "commercialCatalogue") for name, caller in readers.items()}

    clear = {"value": "98000.00", "disclosure": "CLEAR"}
    masked = {"value": None, "disclosure": "MASKED"}
    assert seen["INS-A"] == ([{"drug": CAR_T, "insurer": "INS-A", "settlementPrice": clear}], set())
    assert seen["auditor"] == seen["INS-A"]
    assert seen["supervisor"] == ([{"drug": CAR_T, "insurer": "INS-A", "settlementPrice": masked}], set())
    assert seen["admin"] == seen["supervisor"]
    assert seen["INS-A"] != (await fields(service.as_(tokens.payer("insurer", "INS-B")), PRICES, "commercialCatalogue"))


async def test_a_rebate_is_clear_for_its_insurer_only(service: Service) -> None:
    car_t = claim("R-1", diagnoses=("C83.3",), lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}])
    settled = (await service.graphql(SETTLE, {"claim": car_t}))["settle"]
    query = f'query {{ settlement(id: "{settled["id"]}") {{ rebates {{ insurer amount {{ value disclosure }} }} }} }}'

    by_insurer = (await service.as_(service.tokens.payer("insurer", "INS-A")).graphql(query))["settlement"]
    by_hospital = (await service.graphql(query))["settlement"]
    by_auditor = (await service.as_(service.tokens.supervisor(grants=("price_audit",))).graphql(query))["settlement"]

    assert by_insurer["rebates"] == [{"insurer": "INS-A", "amount": {"value": "22000.00", "disclosure": "CLEAR"}}]
    assert by_hospital["rebates"] == [{"insurer": "INS-A", "amount": {"value": None, "disclosure": "MASKED"}}]
    assert by_auditor["rebates"] == by_insurer["rebates"]


async def test_every_write_and_every_denied_attempt_is_in_the_audit_log(service: Service) -> None:
    token = service.tokens.hospital
    token_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    cashier = service.as_(token)
    settled = (await cashier.graphql(SETTLE, {"claim": claim("AU-1")}))["settle"]
    insurer = service.as_(service.tokens.payer("insurer", "INS-A"))
    denied_settle = (await insurer.graphql(SETTLE, {"claim": claim("AU-2")}))["settle"]
    other_hospital = (await cashier.graphql(SETTLE, {"claim": claim("AU-3", institution="H310001")}))["settle"]
    denied_field = await cashier.post(PERSON)

    rows = await audit_rows(service.database_url)
    by_action = [(row["action"], row["outcome"], row["role"], row["org"]) for row in rows]
    assert ("loadDocument", "allowed", "admin", "NHSA-OPS") in by_action  # the fixture's load
    write = next(row for row in rows if row["action"] == "settle" and row["outcome"] == "allowed")
    assert (write["token_id"], write["subject"], write["target"]) == (
        token_id,
        f"user-of-{HOSPITAL}",
        f"settlement:{settled['id']}",
    )
    assert write["occurred_at"] is not None
    assert (denied_settle["code"], other_hospital["code"]) == ("FORBIDDEN", "NOT_FOUND")
    assert ("settle", "denied", "insurer", "INS-A") in by_action
    assert ("settle", "denied", "hospital", HOSPITAL) in by_action
    assert ("read Person.idNumber", "denied", "hospital", HOSPITAL) in by_action
    assert denied_field.status_code == 200


async def test_a_price_whose_key_was_destroyed_reads_as_an_explicit_error(service: Service) -> None:
    from api.crypto import management
    from api.crypto.keyring import FileKeyring
    from api.crypto.suites import Suite

    keyring = FileKeyring(service.tokens.keyring_dir, Suite.AES_256_GCM, create_missing=False)
    active = keyring.active("insurer:INS-A")
    assert active is not None
    management.destroy(keyring, active.key_id)
    await asyncio.sleep(FileKeyring.SCAN_SECONDS + 0.1)  # a running service sees the keyring's changes within this
    insurer = service.as_(service.tokens.payer("insurer", "INS-A"))

    body = (await insurer.post(PRICES)).json()

    assert body["data"]["commercialCatalogue"][0]["drug"] == CAR_T  # the rest of the answer stands
    assert body["data"]["commercialCatalogue"][0]["settlementPrice"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["KEY_DESTROYED"]
    assert "destroyed" in body["errors"][0]["message"]
