"""Concurrent settlement through the HTTP endpoint of a live server (uvicorn, real sockets).

Fifty cashiers settle for one patient against one pool at once: no pool is overdrawn, no annual
cap exceeded, no settlement lost or doubled; and copies of one request settle once.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Mode
from tests.api.conftest import Service, serving, settings_for
from tests.api.documents import GENERIC_A, HOSPITAL, MEMBER, POOLS, SETTLE, claim

CAPPED_PLAN = {
    "region": "310100",
    "effective_from": "2026-01-01",
    "plans": [
        {
            "id": "MA-CAPPED",
            "payer": "MA-UNION",
            "kind": "mutual_aid",
            "eligible": {"memberships": ["MA-UNION"]},
            "base": ["in_scope"],
            "ratio": {"rate": "0.50"},
            "caps": {"annual": "10000.00"},
        }
    ],
}


def cashier(service: Service) -> dict[str, str]:
    return {"authorization": f"Bearer {service.token}"}


@pytest.fixture
async def live(service: Service) -> AsyncIterator[str]:
    """A uvicorn server over the service's database; yields its base URL."""
    settings = settings_for(service.database_url, service.tokens, Mode.PRODUCTION).replace(key_wait_ms=10_000)
    async with serving(create_app(settings)) as url:
        yield url


async def settle_over_http(client: httpx.AsyncClient, variables: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": SETTLE, "variables": {"claim": variables}})
    assert response.status_code == 200, response.text
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["settle"]
    return result


def generic_claim(serial: str) -> dict[str, Any]:
    return claim(
        serial,
        visit="OUTPATIENT",
        diagnoses=("I10",),
        lines=[{"drug": GENERIC_A, "quantity": 20, "unitPrice": "250.00"}],
    )


def fen(yuan: str) -> int:
    return int(yuan.replace(".", ""))


async def test_fifty_concurrent_settlements_for_one_patient_respect_pools_and_caps(service: Service, live: str) -> None:
    assert (await service.load(CAPPED_PLAN))["planVersions"] == 1

    async with httpx.AsyncClient(base_url=live, timeout=60, headers=cashier(service)) as client:
        results = await asyncio.gather(*(settle_over_http(client, generic_claim(f"C-{n:02d}")) for n in range(50)))

    assert [result["__typename"] for result in results] == ["Settlement"] * 50
    assert len({result["id"] for result in results}) == 50
    page = await service.graphql("{ settlements(first: 100) { edges { node { id } } } }")
    assert len(page["settlements"]["edges"]) == 50

    def paid(plan: str) -> list[dict[str, str]]:
        return [fund for result in results for fund in result["explanation"]["funds"] if fund["plan"] == plan]

    assert sum(fen(fund["amount"]) for fund in paid("MA-CAPPED")) == fen("10000.00")  # reached, never exceeded
    fund_shares = [f for result in results for f in result["explanation"]["funds"] if f["payer"] == "NHSA-310100"]
    assert sum(fen(f["drawnFromPrepayment"]) for f in fund_shares) == fen("100000.00")  # the pool ran dry exactly
    assert sum(fen(f["drawnFromPrepayment"]) + fen(f["receivable"]) for f in fund_shares) == sum(
        fen(f["amount"]) for f in fund_shares
    )
    assert sum(fen(fund["amount"]) for fund in paid("BASIC-EMP")) == 49 * fen("4000.00") + fen("2800.00")
    pools = {
        p["payer"]: p for p in (await service.graphql(POOLS, {"code": HOSPITAL}))["institution"]["prepaymentPools"]
    }
    assert pools["NHSA-310100"]["balance"] == "0.00"
    assert fen(pools["MA-UNION"]["balance"]) >= 0
    totals = await service.graphql(
        "query($psn: String!) { person(psnNo: $psn) { accumulators(year: 2026) { plan paid claims } } }",
        {"psn": MEMBER},
    )
    capped = next(a for a in totals["person"]["accumulators"] if a["plan"] == "MA-CAPPED")
    assert (capped["paid"], capped["claims"]) == ("10000.00", 50)


async def test_concurrent_copies_of_one_request_settle_once(service: Service, live: str) -> None:
    async with httpx.AsyncClient(base_url=live, timeout=60, headers=cashier(service)) as client:
        same = generic_claim("SAME")
        copies = await asyncio.gather(*(settle_over_http(client, same) for _ in range(20)))
        different = copy.deepcopy(same)
        different["lines"][0]["quantity"] = 21
        conflicting = await settle_over_http(client, different)

    assert {result["__typename"] for result in copies} == {"Settlement"}
    assert len({result["id"] for result in copies}) == 1
    assert conflicting["__typename"] == "IdempotencyConflict"
    page = await service.graphql("{ settlements(first: 10) { edges { node { serial } } } }")
    assert [edge["node"]["serial"] for edge in page["settlements"]["edges"]] == ["SAME"]
