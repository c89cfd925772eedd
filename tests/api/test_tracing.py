"""Traceability codes at the window: checked, taken from their packages, freed on reversal,
refused when sold twice (and the attempt kept as an anomaly); anomalies flagged at write time.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from tests.api.conftest import Service
from tests.api.documents import (
    EMPLOYEE,
    GENERIC_A,
    HOSPITAL,
    OWN_SHARE,
    PHARMACY,
    REVERSE,
    SETTLE,
    SMALL_HOSPITAL,
    TRASTUZUMAB,
    claim,
    codes,
)

ANOMALIES = """query($f: AnomalyFilter) { anomalies(first: 100, filter: $f) {
  edges { node { kind severity status code institution drug detail } } } }"""
HISTORY = "query($c: String!) { traceCode(code: $c) { kind institution units } }"


async def settle(service: Service, variables: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await service.graphql(SETTLE, {"claim": variables}))["settle"]
    return result


def supervisor(service: Service) -> Service:
    return service.as_(service.tokens.supervisor())


async def kinds(service: Service, **where: str) -> list[str]:
    data = await supervisor(service).graphql(ANOMALIES, {"f": where or None})
    return sorted(edge["node"]["kind"] for edge in data["anomalies"]["edges"])


def generic(serial: str, quantity: int = 2, **line: Any) -> dict[str, Any]:
    """A split-able drug: 60 tablets to a package (GENERIC_A)."""
    return claim(
        serial,
        person=EMPLOYEE,
        visit="OUTPATIENT",
        diagnoses=("I10",),
        lines=[{"drug": GENERIC_A, "quantity": quantity, "unitPrice": "250.00", **line}],
    )


@pytest.mark.parametrize(
    ("codes_of", "named"),
    [
        (lambda good: [good[0], "8301234123"], "8301234123"),  # too short
        (lambda good: [good[0], "830123412345678901AB"], "830123412345678901AB"),  # not digits
        (lambda good: [good[0], "99999991234567890123"], "99999991234567890123"),  # another product
        (lambda good: [good[0]], "2 whole packages"),  # one code for two packages
        (lambda good: [good[0], good[0]], "twice"),  # the same package twice
    ],
    ids=["short", "not digits", "another product", "too few", "twice"],
)
async def test_a_bad_code_is_refused_naming_it_and_nothing_is_written(
    service: Service, codes_of: Any, named: str
) -> None:
    request = claim("T-BAD")
    request["lines"][0]["traceCodes"] = codes_of(request["lines"][0]["traceCodes"])

    refused = await settle(service, request)

    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "TraceCodeRefused",
        "TRACE_CODE_INVALID",
        "claim.lines[0].traceCodes",
    )
    assert named in refused["message"]
    assert await kinds(service) == []
    assert (await supervisor(service).graphql("{ settlements(first: 5) { edges { node { id } } } }"))["settlements"][
        "edges"
    ] == []


async def test_accept_and_flag_settles_an_invalid_code_and_flags_it(service: Service) -> None:
    await service.load(
        {"trace_policies": [{"institution": HOSPITAL, "drug": TRASTUZUMAB, "invalid_codes": "accept_and_flag"}]}
    )
    request = claim("T-FLAG")
    request["lines"][0]["traceCodes"] = [request["lines"][0]["traceCodes"][0], "99999991234567890123"]

    settled = await settle(service, request)

    assert settled["__typename"] == "Settlement"
    assert await kinds(service) == ["PRODUCT_MISMATCH"]


async def test_stock_without_codes_needs_the_no_code_list_and_is_flagged(service: Service) -> None:
    no_codes = generic("T-NOCODE", traceCodes=[])
    refused = await settle(service, no_codes)
    await service.load({"trace_policies": [{"institution": HOSPITAL, "drug": GENERIC_A, "no_code_stock": True}]})
    settled = await settle(service, no_codes)

    assert (refused["code"], "no traceability code" in refused["message"]) == ("TRACE_CODE_INVALID", True)
    assert settled["__typename"] == "Settlement"
    assert await kinds(service) == ["NO_CODE_STOCK"]


async def test_a_whole_package_is_sold_once_and_the_second_sale_is_refused_and_kept(service: Service) -> None:
    first = claim("T-1")
    await settle(service, first)
    again = claim("T-2")
    again["lines"][0]["traceCodes"] = first["lines"][0]["traceCodes"]
    elsewhere = copy.deepcopy(again) | {"serial": "T-3", "institution": SMALL_HOSPITAL}

    here = await settle(service, again)
    there = await settle(service.as_(service.tokens.mint("hospital", SMALL_HOSPITAL)), elsewhere)

    assert (here["code"], there["code"]) == ("TRACE_CODE_ALREADY_SOLD", "TRACE_CODE_ALREADY_SOLD")
    assert "already sold here on" in here["message"]
    assert "already sold at another institution on" in there["message"] and HOSPITAL not in there["message"]
    assert await kinds(service) == ["CODE_REUSED", "CODE_REUSED"]  # recorded though refused
    history = (await supervisor(service).graphql(HISTORY, {"c": first["lines"][0]["traceCodes"][0]}))["traceCode"]
    assert history == [{"kind": "sold", "institution": HOSPITAL, "units": 1}]


async def test_a_split_package_is_dispensed_in_parts_until_used_up_never_beyond(service: Service) -> None:
    (package,) = codes(GENERIC_A, 1)  # 60 tablets
    parts = [
        await settle(service, generic(f"T-SPLIT-{n}", quantity, traceCodes=[package], split=True))
        for n, quantity in enumerate((25, 25, 10))
    ]
    beyond = await settle(service, generic("T-SPLIT-4", 1, traceCodes=[package], split=True))

    assert [part["__typename"] for part in parts] == ["Settlement"] * 3
    assert (beyond["code"], "fewer units than dispensed" in beyond["message"]) == ("TRACE_CODE_ALREADY_SOLD", True)
    assert await kinds(service) == ["UNITS_BEYOND_PACKAGE"]
    history = (await supervisor(service).graphql(HISTORY, {"c": package}))["traceCode"]
    assert [event["units"] for event in history] == [25, 25, 10]


async def test_a_reversal_frees_the_units_and_reuse_soon_after_is_flagged(service: Service) -> None:
    first = claim("T-R1")
    settled = await settle(service, first)
    await service.graphql(REVERSE, {"input": {"id": settled["id"], "reason": "refund"}})
    again = claim("T-R2")
    again["lines"][0]["traceCodes"] = first["lines"][0]["traceCodes"]

    resold = await settle(service, again)

    assert resold["__typename"] == "Settlement"
    assert await kinds(service) == ["REUSED_AFTER_REVERSAL", "REUSED_AFTER_REVERSAL"]
    history = (await supervisor(service).graphql(HISTORY, {"c": first["lines"][0]["traceCodes"][1]}))["traceCode"]
    assert [event["kind"] for event in history] == ["sold", "returned", "sold"]


async def test_a_code_sold_before_its_product_was_listed_is_flagged(service: Service) -> None:
    await service.load(
        {
            "drugs": [
                {
                    "code": OWN_SHARE,
                    "generic_name": "osimertinib",
                    "package_units": 30,
                    "trace_prefixes": ["8304321"],
                    "listed_on": "2026-06-01",
                }
            ]
        }
    )
    early = claim(
        "T-EARLY",
        person=EMPLOYEE,
        service_date="2026-05-20",
        diagnoses=("C34.1",),
        lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00"}],
    )

    assert (await settle(service, early))["__typename"] == "Settlement"
    assert await kinds(service) == ["SOLD_BEFORE_LISTING"]


async def test_a_pharmacy_sale_is_matched_to_the_hospitals_e_prescription(service: Service) -> None:
    record = """mutation($i: PrescriptionInput!) { recordPrescription(input: $i) {
      __typename ... on Error { code } } }"""
    recorded = await service.graphql(
        record, {"i": {"prescriptionId": "RX-1", "person": EMPLOYEE, "drugs": [OWN_SHARE], "issuedOn": "2026-03-10"}}
    )
    pharmacy = service.as_(service.tokens.pharmacy)

    def sale(serial: str, prescription: str) -> dict[str, Any]:
        return claim(
            serial,
            person=EMPLOYEE,
            institution=PHARMACY,
            visit="PHARMACY",
            diagnoses=("C34.1",),
            lines=[{"drug": OWN_SHARE, "quantity": 1, "unitPrice": "8000.00", "prescriptionId": prescription}],
        )

    matched = await settle(pharmacy, sale("T-RX-1", "RX-1"))
    unmatched = await settle(pharmacy, sale("T-RX-2", "RX-UNKNOWN"))

    assert recorded["recordPrescription"]["__typename"] == "PrescriptionRecord"
    assert (matched["__typename"], unmatched["__typename"]) == ("Settlement", "Settlement")
    assert await kinds(service) == ["NO_PRESCRIPTION"]


async def test_two_institutions_scanning_one_code_at_once_exactly_one_wins(service: Service, backend: str) -> None:
    (package,) = codes(TRASTUZUMAB, 1)
    cashiers = {HOSPITAL: service, SMALL_HOSPITAL: service.as_(service.tokens.mint("hospital", SMALL_HOSPITAL))}

    async def scan(institution: str, attempt: int) -> str:
        request = claim(
            f"T-RACE-{institution}-{attempt}",
            institution=institution,
            visit="OUTPATIENT",
            lines=[{"drug": TRASTUZUMAB, "quantity": 1, "unitPrice": "1500.00", "traceCodes": [package]}],
        )
        return str((await settle(cashiers[institution], request))["__typename"])

    outcomes = await asyncio.gather(*(scan(institution, n) for n in range(5) for institution in cashiers))

    assert sorted(outcomes) == ["Settlement"] + ["TraceCodeRefused"] * 9
    history = (await supervisor(service).graphql(HISTORY, {"c": package}))["traceCode"]
    assert [event["kind"] for event in history] == ["sold"]
    assert backend in ("sqlite", "postgresql")
