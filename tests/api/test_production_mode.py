"""Production mode tells an attacker nothing about the schema: no introspection, no "did you mean"
suggestions, no GraphiQL; and a trusted-documents mode runs only the operations of a manifest.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.http.graphql import TrustedDocuments, digest
from api.settings import Mode
from tests.api.conftest import running, settings_for
from tests.api.documents import SETTLE, claim
from tests.api.tokens import Tokens
from tests.conftest import Databases

TRUSTED = "query Trusted { __typename }"


@pytest.fixture
async def production(databases: Databases, tokens: Tokens) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(await databases.fresh("sqlite"), tokens, Mode.PRODUCTION))
    async with running(app) as client:
        client.headers["authorization"] = f"Bearer {tokens.hospital}"
        yield client


async def codes_and_messages(client: httpx.AsyncClient, query: str, variables: object = None) -> list[tuple[str, str]]:
    body = (await client.post("/graphql", json={"query": query, "variables": variables})).json()
    return [(error["extensions"]["code"], error["message"]) for error in body.get("errors", [])]


async def test_production_refuses_introspection(production: httpx.AsyncClient) -> None:
    for query in ("{ __schema { types { name } } }", '{ __type(name: "Settlement") { fields { name } } }'):
        errors = await codes_and_messages(production, query)
        assert errors and {code for code, _ in errors} == {"GRAPHQL_VALIDATION_FAILED"}, errors
    assert (await production.post("/graphql", json={"query": "{ __typename }"})).json() == {
        "data": {"__typename": "Query"}
    }


async def test_production_suggests_no_field_argument_or_value_names(
    production: httpx.AsyncClient, databases: Databases, tokens: Tokens
) -> None:
    mistakes = [
        ('{ institutio(code: "H310003") { code } }', None),
        ('{ institution(cod: "H310003") { code } }', None),
        (SETTLE, {"claim": claim("S-SUGGEST") | {"visit": "INPATIEN"}}),
        (SETTLE, {"claim": claim("S-SUGGEST") | {"servceDate": "2026-03-15"}}),
    ]
    for query, variables in mistakes:
        errors = await codes_and_messages(production, query, variables)
        assert errors and not any("Did you mean" in message for _, message in errors), errors

    development = create_app(settings_for(await databases.fresh("sqlite"), tokens, Mode.DEVELOPMENT))
    async with running(development) as client:
        client.headers["authorization"] = f"Bearer {tokens.hospital}"
        helped = await codes_and_messages(client, mistakes[0][0])
    assert any("Did you mean" in message for _, message in helped)  # development does help


async def test_production_serves_no_graphiql(production: httpx.AsyncClient) -> None:
    del production.headers["authorization"]
    page = await production.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 401 and "graphiql" not in page.text.lower()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps({digest(TRUSTED): TRUSTED}), encoding="utf-8")
    return path


async def test_trusted_documents_mode_runs_only_the_manifest(
    databases: Databases, tokens: Tokens, manifest: Path
) -> None:
    production = settings_for(await databases.fresh("sqlite"), tokens, Mode.PRODUCTION)
    settings = production.replace(trusted_documents=manifest)
    async with running(create_app(settings)) as client:
        client.headers["authorization"] = f"Bearer {tokens.hospital}"
        by_text = (await client.post("/graphql", json={"query": TRUSTED})).json()
        by_id = (await client.post("/graphql", json={"documentId": digest(TRUSTED)})).json()
        persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest(TRUSTED).removeprefix("sha256:")}}
        by_apq = (await client.post("/graphql", json={"extensions": persisted})).json()
        other = await client.post("/graphql", json={"query": "{ __typename }"})
        unknown_id = await client.post("/graphql", json={"documentId": "sha256:" + "0" * 64})

    for body in (by_text, by_id, by_apq):
        assert body == {"data": {"__typename": "Query"}}
    for refused in (other, unknown_id):
        assert refused.json()["errors"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
        assert "data" not in refused.json()


def test_a_manifest_whose_hash_does_not_match_its_document_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "forged.json"
    path.write_text(json.dumps({digest(TRUSTED): "mutation { loadDocument(document: {}) { __typename } }"}))
    with pytest.raises(ValueError, match="not the SHA-256 of its document"):
        TrustedDocuments.load(path)
