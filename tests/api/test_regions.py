"""Supervisors see only their regions: through every query and every export, with or without the
price-audit grant, even when they ask for another region's objects by name; a rebate statement
lists the insurers of the caller's regions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import Service
from tests.api.documents import (
    CAR_T,
    HOSPITAL,
    IN_SECOND_REGION,
    MEMBER,
    REGION,
    SECOND_REGION,
    SECOND_REGION_PRICE,
    SETTLE,
    claim,
    in_second_region,
    second_region_data,
)

YEAR = {"start": "2026-01-01", "end": "2026-12-31"}
SECOND_REGION_REBATE = "25000.00"  # on one CAR-T unit at 120000.00
STATEMENT = """query($i: String) { rebateStatement(start: "2026-01-01", end: "2026-12-31", insurer: $i) {
  insurer manufacturer drug period units amount lost { settlement reason } } }"""


@dataclass
class Regions:
    """Both regions loaded, each with a claim that basic insurance pays and a CAR-T claim that its
    insurer pays (and is owed a rebate on, from no-code stock: an anomaly).
    """

    service: Service
    settlements: dict[str, list[dict[str, Any]]]  # region -> its settlements

    def codes(self, region: str) -> list[str]:
        return [
            code for s in self.settlements[region] for line in s["explanation"]["lines"] for code in line["traceCodes"]
        ]

    def second_region_markers(self) -> set[str]:
        """Every value that names something of the second region (its codes, its settlements and
        their traceability codes) or is its insurer's secret (its price, its rebate).
        """
        settled = self.settlements[SECOND_REGION]
        secrets = {SECOND_REGION_PRICE, SECOND_REGION_REBATE}
        return set(IN_SECOND_REGION.values()) | {s["id"] for s in settled} | set(self.codes(SECOND_REGION)) | secrets


@pytest.fixture
async def regions(service: Service) -> Regions:
    policies = [{"institution": code, "drug": CAR_T, "no_code_stock": True} for code in (HOSPITAL, "H320003")]
    for document in (second_region_data(), {"trace_policies": policies}):
        assert (await service.load(document))["__typename"] == "LoadSummary"
    settled: dict[str, list[dict[str, Any]]] = {}
    for region in (REGION, SECOND_REGION):
        place = (lambda value: value) if region == REGION else in_second_region
        cashier = service.as_(service.tokens.mint("hospital", place(HOSPITAL)))
        settled[region] = []
        for request in (
            claim("R-OWN"),
            claim(
                "R-CART",
                diagnoses=("C83.3",),
                lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00", "traceCodes": []}],
            ),
        ):
            result = (await cashier.graphql(SETTLE, {"claim": place(request)}))["settle"]
            assert result["__typename"] == "Settlement", result
            settled[region].append(result)
    return Regions(service, settled)


def graphql_asks(regions: Regions, region: str) -> list[tuple[str, dict[str, Any]]]:
    """Every query, asked for `region`'s objects by name (and unfiltered), nested fields included."""
    own, car_t = regions.settlements[region]
    institution = own["institution"]
    person = MEMBER if region == REGION else in_second_region(MEMBER)
    id_number = "310101198001010012" if region == REGION else in_second_region("310101198001010012")
    insurer = "INS-A" if region == REGION else "INS-B"
    page = "edges { node { id institution serial person rebates { insurer status amount { value } } } }"
    return [
        (
            "query($id: ID!) { settlement(id: $id) { id institution explanation { total } "
            "rebates { insurer status amount { value } } } }",
            {"id": car_t["id"]},
        ),
        (
            "query($i: String!, $s: String!) { settlementBySerial(institution: $i, serial: $s) { id } }",
            {"i": institution, "s": car_t["serial"]},
        ),
        (f"query {{ settlements(first: 100) {{ {page} }} }}", {}),
        (
            f"query($i: String) {{ settlements(first: 100, filter: {{institution: $i}}) {{ {page} }} }}",
            {"i": institution},
        ),
        (f"query($p: String) {{ settlements(first: 100, filter: {{payer: $p}}) {{ {page} }} }}", {"p": insurer}),
        (
            "query($p: String!) { person(psnNo: $p) { psnNo region accumulators(year: 2026) { plan } } }",
            {"p": person},
        ),
        ("query($n: String!) { personByIdNumber(idNumber: $n) { psnNo region } }", {"n": id_number}),
        (STATEMENT, {"i": None}),
        (STATEMENT, {"i": insurer}),
        (
            "query($c: String!) { institution(code: $c) { code region prepaymentPools { payer institution } } }",
            {"c": institution},
        ),
        ("query($r: String) { plans(region: $r) { plan payer region } }", {"r": region}),
        ("query { plans { plan payer region } }", {}),
        (
            'query($r: String!) { commercialCatalogue(region: $r, onDate: "2026-06-01") '
            "{ drug insurer settlementPrice { value } } }",
            {"r": region},
        ),
        (
            "query($r: String) { anomalies(first: 100, filter: {region: $r}) "
            "{ edges { node { id institution region settlementId } } } }",
            {"r": region},
        ),
        ("query { anomalies(first: 100) { edges { node { id institution region settlementId } } } }", {}),
        (
            "query($c: String!) { traceCode(code: $c) { code institution settlementId } }",
            {"c": regions.codes(region)[0]},
        ),
        (
            'query($i: String!) { institutionRisk(institution: $i, start: "2026-01-01", end: "2026-12-31") '
            "{ institution settlements anomalies } }",
            {"i": institution},
        ),
    ]


def export_asks(regions: Regions, region: str) -> list[tuple[str, dict[str, str]]]:
    institution = regions.settlements[region][0]["institution"]
    return [
        ("/exports/anomalies.csv", {}),
        ("/exports/anomalies.csv", {"region": region}),
        ("/exports/anomalies.csv", {"institution": institution}),
        ("/exports/trace-code.csv", {"code": regions.codes(region)[0]}),
        ("/exports/risk.csv", {"institution": institution, **YEAR}),
    ]


def leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif value is not None:
        yield str(value)


async def everything_seen(caller: Service, regions: Regions, region: str) -> set[str]:
    """Every value `caller` gets back when it asks every query and export for `region`'s objects."""
    seen: set[str] = set()
    for query, variables in graphql_asks(regions, region):
        response = await caller.post(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        for error in body.get("errors") or []:  # only a statement may be refused, to a caller without the grant
            assert error["extensions"]["code"] == "FORBIDDEN" and error["path"] == ["rebateStatement"], error
        seen.update(leaves(body.get("data")))
    for path, params in export_asks(regions, region):
        response = await caller.client.get(path, params=params, headers={"authorization": f"Bearer {caller.token}"})
        assert response.status_code in (200, 404), response.text
        if response.status_code == 200:
            seen.update(
                cell.lstrip("'") for row in csv.reader(io.StringIO(response.text.lstrip("\ufeff"))) for cell in row
            )
    return seen


@pytest.mark.parametrize("grants", [(), ("price_audit",)], ids=["plain", "price-audit"])
async def test_a_supervisor_sees_nothing_of_another_region_through_any_query_or_export(
    regions: Regions, grants: tuple[str, ...]
) -> None:
    service = regions.service
    first = service.as_(service.tokens.supervisor(REGION, grants=grants))
    second = service.as_(service.tokens.supervisor(SECOND_REGION, grants=grants))
    markers = regions.second_region_markers()

    seen_from_first = await everything_seen(first, regions, SECOND_REGION)
    seen_from_second = await everything_seen(second, regions, SECOND_REGION)

    assert seen_from_first & markers == set()
    own = {"H320003", SECOND_REGION, "Q0001", "BASIC-EMP-B", "HMB-B", *regions.codes(SECOND_REGION)[:1]}
    own |= {s["id"] for s in regions.settlements[SECOND_REGION]}
    assert own <= seen_from_second  # the same questions, asked by the region's own supervisor, are answered
    assert (SECOND_REGION_REBATE in seen_from_second) is bool(
        grants
    )  # INS-B's rebate: to its region's price auditor only


async def statement(caller: Service, insurer: str | None = None) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = (await caller.graphql(STATEMENT, {"i": insurer}))["rebateStatement"]
    return lines


async def test_a_rebate_statement_lists_the_insurers_of_the_callers_regions_only(regions: Regions) -> None:
    tokens, service = regions.service.tokens, regions.service
    auditor = {
        "first": service.as_(tokens.supervisor(REGION, grants=("price_audit",))),
        "second": service.as_(tokens.supervisor(SECOND_REGION, grants=("price_audit",))),
        "both": service.as_(tokens.supervisor(REGION, SECOND_REGION, grants=("price_audit",))),
    }
    insurer_a = service.as_(tokens.payer("insurer", "INS-A"))

    def owed(lines: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
        return [(line["insurer"], line["drug"], line["amount"], line["units"]) for line in lines]

    a_line = ("INS-A", CAR_T, "22000.00", 1)  # 120000.00 - 98000.00
    b_line = ("INS-B", CAR_T, SECOND_REGION_REBATE, 1)  # 120000.00 - 95000.00
    assert owed(await statement(auditor["first"])) == [a_line]
    assert owed(await statement(auditor["second"])) == [b_line]
    assert owed(await statement(auditor["both"])) == [a_line, b_line]
    assert owed(await statement(auditor["both"], "INS-B")) == [b_line]
    assert await statement(auditor["first"], "INS-B") == []  # another region's insurer, asked by name
    assert owed(await statement(insurer_a)) == [a_line]
    assert await statement(insurer_a, "INS-B") == []  # another insurer's reads as empty
    plain = await service.as_(tokens.supervisor(REGION)).post(STATEMENT, {"i": None})
    assert [error["extensions"]["code"] for error in plain.json()["errors"]] == ["FORBIDDEN"]
