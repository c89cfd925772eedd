"""Queries: settlements by page and filter, versions in force on the service date, loading."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from tests.api.conftest import Service, clock_from, loaded_service
from tests.api.documents import (
    CAR_T,
    EMPLOYEE,
    GENERIC_A,
    HOSPITAL,
    MEMBER,
    REFERENCE_DATA,
    RESIDENT,
    REVERSE,
    SETTLE,
    SMALL_HOSPITAL,
    claim,
)
from tests.api.tokens import Tokens

PAGE = """query($first: Int!, $after: String, $filter: SettlementFilter) {
  settlements(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id serial status institution } } pageInfo { hasNextPage endCursor } } }"""


async def settle(service: Service, variables: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await service.graphql(SETTLE, {"claim": variables}))["settle"]
    assert result["__typename"] == "Settlement", result
    return result


def supervisor(service: Service) -> Service:
    return service.as_(service.tokens.supervisor())


async def serials(service: Service, filter: dict[str, Any] | None = None, first: int = 50) -> list[str]:
    data = await supervisor(service).graphql(PAGE, {"first": first, "filter": filter})
    return [edge["node"]["serial"] for edge in data["settlements"]["edges"]]


async def seed(service: Service) -> None:
    """Five settlements: two dates, two institutions, three drugs, one reversed, one with INS-A."""
    await settle(service, claim("A-1", person=EMPLOYEE, service_date="2026-02-01"))
    await settle(service, claim("A-2", person=RESIDENT, service_date="2026-03-01"))
    await settle(
        service.as_(service.tokens.mint("hospital", SMALL_HOSPITAL)),
        claim(
            "A-3",
            person=EMPLOYEE,
            institution=SMALL_HOSPITAL,
            visit="OUTPATIENT",
            diagnoses=("I10",),
            lines=[{"drug": GENERIC_A, "quantity": 4, "unitPrice": "250.00"}],
        ),
    )
    await settle(
        service,
        claim(
            "A-4", person=MEMBER, diagnoses=("C83.3",), lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}]
        ),
    )
    reversed_one = await settle(service, claim("A-5", person=RESIDENT, service_date="2026-04-01"))
    await service.graphql(REVERSE, {"input": {"id": reversed_one["id"], "reason": "refund"}})


async def test_settlements_page_newest_first_with_stable_cursors(service: Service) -> None:
    await seed(service)

    reader = supervisor(service)
    first = (await reader.graphql(PAGE, {"first": 2}))["settlements"]
    second = (await reader.graphql(PAGE, {"first": 2, "after": first["pageInfo"]["endCursor"]}))["settlements"]
    third = (await reader.graphql(PAGE, {"first": 2, "after": second["pageInfo"]["endCursor"]}))["settlements"]

    pages = [[edge["node"]["serial"] for edge in page["edges"]] for page in (first, second, third)]
    assert pages == [["A-5", "A-4"], ["A-3", "A-2"], ["A-1"]]
    assert [page["pageInfo"]["hasNextPage"] for page in (first, second, third)] == [True, True, False]


async def test_settlements_filter_by_institution_payer_dates_drug_and_status(service: Service) -> None:
    await seed(service)

    assert await serials(service, {"institution": SMALL_HOSPITAL}) == ["A-3"]
    assert await serials(service, {"payer": "INS-A"}) == ["A-4"]
    assert await serials(service, {"drug": CAR_T}) == ["A-4"]
    assert await serials(service, {"status": "REVERSED"}) == ["A-5"]
    assert await serials(service, {"serviceFrom": "2026-02-15", "serviceTo": "2026-03-10"}) == ["A-2"]
    assert await serials(service, {"institution": HOSPITAL, "status": "SETTLED", "drug": "XL01XC00001"}) == [
        "A-2",
        "A-1",
    ]


async def test_a_cursor_the_service_did_not_give_is_refused(service: Service) -> None:
    response = await service.post(PAGE, {"first": 2, "after": "bogus"})
    assert "not a cursor" in response.json()["errors"][0]["message"]


async def test_a_claim_is_split_by_the_plan_version_in_force_on_its_service_date(service: Service) -> None:
    richer = copy.deepcopy(REFERENCE_DATA)
    richer["effective_from"] = "2026-07-01"
    for key in ("payers", "institutions", "drugs", "people", "grants", "formulary"):
        richer.pop(key)
    richer["plans"] = [plan for plan in richer["plans"] if plan["id"] == "BASIC-EMP"]
    richer["plans"][0]["ratio"] = {"rate": "0.95"}
    assert (await service.load(richer))["planVersions"] == 1

    june = await settle(service, claim("V-1", person=EMPLOYEE, service_date="2026-06-30"))
    july = await settle(service, claim("V-2", person=EMPLOYEE, service_date="2026-07-01"))

    def basic(settlement: dict[str, Any]) -> str:
        return next(f["amount"] for f in settlement["explanation"]["funds"] if f["plan"] == "BASIC-EMP")

    assert basic(june) == "960.00"  # 0.80 x (2700.00 - 1500.00)
    assert basic(july) == "2565.00"  # 0.95 x 2700.00: the deductible was met in June


async def test_a_new_plan_year_starts_from_zero(database_url: str, tokens: Tokens) -> None:
    async with loaded_service(database_url, tokens, clock_from(datetime(2027, 1, 1, 2, tzinfo=UTC))) as service:
        await settle(service, claim("Y-1", person=EMPLOYEE, service_date="2026-12-31"))
        next_year = await settle(service, claim("Y-2", person=EMPLOYEE, service_date="2027-01-01"))

        basic = next(f for f in next_year["explanation"]["funds"] if f["plan"] == "BASIC-EMP")
        assert (basic["deductibleApplied"], basic["amount"], next_year["year"]) == ("1500.00", "960.00", 2027)


async def test_loading_the_same_document_again_changes_nothing(service: Service) -> None:
    again = await service.load(copy.deepcopy(REFERENCE_DATA))

    assert again == {
        "__typename": "LoadSummary",
        "planVersions": 0,
        "formularyVersions": 0,
        "grants": 0,
        "unchangedVersions": 7,
    }


async def test_a_different_version_under_the_same_date_is_refused(service: Service) -> None:
    changed = copy.deepcopy(REFERENCE_DATA)
    changed["plans"][0]["ratio"] = {"rate": "0.99"}

    refused = await service.load(changed)

    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "VersionConflict",
        "VERSION_CONFLICT",
        "document.plans[0]",
    )


async def test_a_malformed_document_names_its_field(service: Service) -> None:
    broken = {"region": "310100", "effective_from": "2026-08-01", "plans": [{"id": "X", "payer": "INS-A"}]}

    refused = await service.load(broken)

    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "InvalidInput",
        "MISSING_FIELD",
        "document.plans[0].kind",
    )


async def test_a_grant_raises_the_pool_and_is_idempotent_by_reference(service: Service) -> None:
    grant = """mutation { grantPrepayment(reference: "G-EXTRA", payer: "INS-A", institution: "H310003",
      amount: "2500.00") { __typename ... on PrepaymentPool { granted balance } ... on Error { code field } } }"""

    admin = service.as_(service.tokens.admin)
    first = (await admin.graphql(grant))["grantPrepayment"]
    again = (await admin.graphql(grant))["grantPrepayment"]

    assert first == {"__typename": "PrepaymentPool", "granted": "3500.00", "balance": "3500.00"}
    assert again == first
