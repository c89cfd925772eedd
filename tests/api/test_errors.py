"""Errors are data: a refused request gets a typed error with a stable code and its field, and
writes no business data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from api.db import models
from api.db.session import create_engine, create_sessionmaker
from tests.api.conftest import Service
from tests.api.documents import ELSEWHERE, HOSPITAL, PHARMACY, PRE_SETTLE, SETTLE, claim

WRITTEN = (
    models.Settlement,
    models.SettlementLine,
    models.LedgerEntry,
    models.Accumulator,
    models.UnitsReceived,
    models.VoidedSerial,
)


async def row_counts(service: Service) -> dict[str, int]:
    engine = create_engine(service.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return {
                model.__tablename__: (await session.execute(select(func.count()).select_from(model))).scalar_one()
                for model in WRITTEN
            }
    finally:
        await engine.dispose()


def edit(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def apply(variables: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key.startswith("line_"):
                variables["lines"][0][key.removeprefix("line_")] = value
            else:
                variables[key] = value

    return apply


CASES = [
    ("unknown drug", edit(line_drug="XNOSUCHDRUG01"), "NotFound", "UNKNOWN_DRUG", "claim.lines[0].drug"),
    ("negative quantity", edit(line_quantity=-2), "InvalidInput", "INVALID_QUANTITY", "claim.lines[0].quantity"),
    ("zero quantity", edit(line_quantity=0), "InvalidInput", "INVALID_QUANTITY", "claim.lines[0].quantity"),
    ("three decimals", edit(line_unitPrice="1600.001"), "InvalidInput", "INVALID_AMOUNT", "claim.lines[0].unitPrice"),
    ("negative price", edit(line_unitPrice="-1.00"), "InvalidInput", "INVALID_AMOUNT", "claim.lines[0].unitPrice"),
    ("no lines", edit(lines=[]), "InvalidInput", "MISSING_FIELD", "claim.lines"),
    ("empty serial", edit(serial=" "), "InvalidInput", "MISSING_FIELD", "claim.serial"),
    ("unknown person", edit(person="P9999"), "NotFound", "NOT_FOUND", "claim.person"),
    ("another institution", edit(institution="H999999"), "NotFound", "NOT_FOUND", "claim.institution"),
    ("no plan covers the person", edit(person=ELSEWHERE), "NotEligible", "NOT_ELIGIBLE", "claim.person"),
    (
        "before the first formulary and plans",
        edit(serviceDate="2025-12-31"),
        "InvalidInput",
        "SERVICE_DATE_BEFORE_RULES",
        "claim.serviceDate",
    ),
    ("in year 9999", edit(serviceDate="9999-12-31"), "InvalidInput", "SERVICE_DATE_IN_FUTURE", "claim.serviceDate"),
    ("pharmacy visit at a hospital", edit(visit="PHARMACY"), "InvalidInput", "VISIT_MISMATCH", "claim.visit"),
    ("settling as another institution", edit(institution=PHARMACY), "NotFound", "NOT_FOUND", "claim.institution"),
]


@pytest.mark.parametrize(("change", "typename", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("mutation", [SETTLE, PRE_SETTLE], ids=["settle", "preSettle"])
async def test_a_refused_claim_gets_a_typed_error_and_writes_nothing(
    service: Service, mutation: str, change: Callable[[dict[str, Any]], None], typename: str, code: str, field: str
) -> None:
    before = await row_counts(service)
    variables = claim("S-BAD")
    change(variables)

    data = await service.graphql(mutation, {"claim": variables})

    result = next(iter(data.values()))
    assert (result["__typename"], result["code"], result["field"]) == (typename, code, field)
    assert result["message"]
    assert result["retryable"] is False
    assert await row_counts(service) == before


async def test_a_malformed_request_is_refused_by_graphql_itself(service: Service) -> None:
    before = await row_counts(service)
    response = await service.post("mutation { settle(claim: {serial: 1}) { __typename } }")
    assert response.json()["errors"]
    assert (await service.client.get("/graphql", params={"query": "{ __typename }"})).status_code in (400, 401, 405)
    assert await row_counts(service) == before


async def test_a_settled_serial_at_one_institution_is_free_at_another(service: Service) -> None:
    first = (await service.graphql(SETTLE, {"claim": claim("S-SHARED")}))["settle"]
    elsewhere = claim("S-SHARED", institution="H310001")

    other_hospital = service.as_(service.tokens.mint("hospital", "H310001"))
    second = (await other_hospital.graphql(SETTLE, {"claim": elsewhere}))["settle"]

    assert second["__typename"] == "Settlement"
    assert second["id"] != first["id"]
    assert first["institution"] == HOSPITAL


async def test_an_unexpected_failure_is_masked_for_the_caller_and_logged_by_kind_and_place_not_message(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from api.services import queries

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("UPDATE people SET name = 'secret' -- a message a caller must never see")

    monkeypatch.setattr(queries, "institution", broken)
    body = (await service.post('{ institution(code: "H310003") { code } }')).json()

    assert [error["message"] for error in body["errors"]] == ["internal error: the event is logged"]
    assert [error["extensions"]["code"] for error in body["errors"]] == ["INTERNAL_ERROR"]
    logged = [record.msg for record in caplog.records if isinstance(record.msg, dict)]
    assert [event["error"] for event in logged if event["event"] == "unexpected error"] == ["RuntimeError"]
    assert not any("must never see" in record.getMessage() for record in caplog.records)
