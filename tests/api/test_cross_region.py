"""Settlements treated outside the patient's insuring region (异地就医): the supervisors of the
insuring region see them, and what their funds owe the institution there, beside the treating
region's supervisors; a third region's see nothing. Prices stay with the treating region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import Service
from tests.api.documents import (
    CAR_T,
    HOSPITAL,
    MEMBER,
    REGION,
    SECOND_REGION,
    SETTLE,
    claim,
    second_region_data,
)

TREATING_HOSPITAL = "H320003"  # the second region's level-3 hospital
THIRD_REGION = "330100"
TREATING_PRICE = "97000.00"
REBATE = "23000.00"  # on one CAR-T unit at 120000.00
ONE_SETTLEMENT = """query($id: ID!) { settlement(id: $id) { id institution person
  explanation { total patientCash funds { plan payer kind amount drawnFromPrepayment receivable } }
  rebates { insurer status amount { value disclosure } } } }"""
BY_SERIAL = "query($i: String!, $s: String!) { settlementBySerial(institution: $i, serial: $s) { id } }"
PAGE = """query($filter: SettlementFilter) { settlements(first: 100, filter: $filter) {
  edges { node { id serial institution } } } }"""
POOLS = "query($c: String!) { institution(code: $c) { code prepaymentPools { payer drawn balance } } }"
STATEMENT = """query { rebateStatement(start: "2026-01-01", end: "2026-12-31") { insurer drug amount units } }"""


@dataclass
class Elsewhere:
    """Region 310100's member treated at region 320100's hospital, where 310100's fund holds a
    small pool (500.00) and its mutual aid none; and the same member treated at home.
    """

    service: Service
    away: dict[str, Any]
    home: dict[str, Any]

    def supervisor(self, *regions: str, grants: tuple[str, ...] = ()) -> Service:
        return self.service.as_(self.service.tokens.supervisor(*regions, grants=grants))

    async def settlement(self, caller: Service, settlement_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = (await caller.graphql(ONE_SETTLEMENT, {"id": settlement_id}))["settlement"]
        return found


async def settle(cashier: Service, request: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await cashier.graphql(SETTLE, {"claim": request}))["settle"]
    assert result["__typename"] == "Settlement", result
    return result


async def listed(caller: Service, filter: dict[str, Any] | None = None) -> list[str]:
    data = await caller.graphql(PAGE, {"filter": filter})
    return [edge["node"]["serial"] for edge in data["settlements"]["edges"]]


@pytest.fixture
async def elsewhere(service: Service) -> Elsewhere:
    grant = {"reference": "G-NHSA-AT-H320003", "payer": "NHSA-310100", "institution": TREATING_HOSPITAL}
    for document in (second_region_data(), {"grants": [grant | {"amount": "500.00"}]}):
        assert (await service.load(document))["__typename"] == "LoadSummary"
    treating = service.as_(service.tokens.mint("hospital", TREATING_HOSPITAL))
    away = await settle(treating, claim("X-AWAY", person=MEMBER, institution=TREATING_HOSPITAL))
    home = await settle(service, claim("X-HOME", person=MEMBER, institution=HOSPITAL, service_date="2026-03-16"))
    return Elsewhere(service, away, home)


def owed(settlement: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Each payer's share as (amount, drawn from its pool there, receivable)."""
    return {
        fund["payer"]: (fund["amount"], fund["drawnFromPrepayment"], fund["receivable"])
        for fund in settlement["explanation"]["funds"]
        if fund["amount"] != "0.00"
    }


async def test_the_insuring_and_the_treating_regions_supervisors_both_see_a_settlement_treated_elsewhere(
    elsewhere: Elsewhere,
) -> None:
    away = elsewhere.away
    insuring, treating = elsewhere.supervisor(REGION), elsewhere.supervisor(SECOND_REGION)

    for caller in (insuring, treating):
        seen = await elsewhere.settlement(caller, away["id"])
        assert seen is not None and seen["institution"] == TREATING_HOSPITAL and seen["person"] == MEMBER
        by_serial = await caller.graphql(BY_SERIAL, {"i": TREATING_HOSPITAL, "s": "X-AWAY"})
        assert by_serial["settlementBySerial"] == {"id": away["id"]}
    assert await listed(insuring) == ["X-HOME", "X-AWAY"]  # its own hospital's, and its insured's elsewhere
    assert await listed(treating) == ["X-AWAY"]  # not the member's settlement at home


async def test_the_insuring_regions_supervisors_see_what_its_funds_owe_the_institution_elsewhere(
    elsewhere: Elsewhere,
) -> None:
    insuring = elsewhere.supervisor(REGION)

    seen = await elsewhere.settlement(insuring, elsewhere.away["id"])

    assert seen is not None
    # SCENARIO.md's worked example at a level-3 hospital: the fund's 960.00 drawn from its 500.00
    # pool there as far as it goes, the rest owed; the mutual aid has no pool there and owes it all
    assert owed(seen) == {
        "NHSA-310100": ("960.00", "500.00", "460.00"),
        "MA-UNION": ("1020.00", "0.00", "1020.00"),
    }
    assert owed(seen) == owed(elsewhere.away)  # exactly what the cashier was shown
    # the pools belong to the treating institution's region: seen by its supervisors, not these
    assert (await insuring.graphql(POOLS, {"c": TREATING_HOSPITAL}))["institution"] is None
    pools = (await elsewhere.supervisor(SECOND_REGION).graphql(POOLS, {"c": TREATING_HOSPITAL}))["institution"]
    assert {"payer": "NHSA-310100", "drawn": "500.00", "balance": "0.00"} in pools["prepaymentPools"]


async def test_a_supervisor_of_a_third_region_sees_nothing_of_a_settlement_treated_elsewhere(
    elsewhere: Elsewhere,
) -> None:
    third = elsewhere.supervisor(THIRD_REGION)

    assert await elsewhere.settlement(third, elsewhere.away["id"]) is None
    by_serial = await third.graphql(BY_SERIAL, {"i": TREATING_HOSPITAL, "s": "X-AWAY"})
    assert by_serial["settlementBySerial"] is None
    assert await listed(third) == []
    assert await listed(third, {"insuredRegion": REGION, "crossRegion": True}) == []


async def test_settlements_filter_by_insuring_region_treating_region_and_treatment_elsewhere(
    elsewhere: Elsewhere,
) -> None:
    insuring, treating = elsewhere.supervisor(REGION), elsewhere.supervisor(SECOND_REGION)
    both = elsewhere.supervisor(REGION, SECOND_REGION)

    assert await listed(insuring, {"insuredRegion": REGION, "crossRegion": True}) == ["X-AWAY"]
    assert await listed(insuring, {"crossRegion": False}) == ["X-HOME"]
    assert await listed(insuring, {"region": SECOND_REGION}) == ["X-AWAY"]
    assert await listed(insuring, {"insuredRegion": SECOND_REGION}) == []
    assert await listed(treating, {"region": SECOND_REGION, "crossRegion": True}) == ["X-AWAY"]
    assert await listed(treating, {"insuredRegion": REGION}) == ["X-AWAY"]
    assert await listed(both, {"insuredRegion": REGION}) == ["X-HOME", "X-AWAY"]
    cashier = elsewhere.service.as_(elsewhere.service.tokens.mint("hospital", TREATING_HOSPITAL))
    assert await listed(cashier, {"crossRegion": True}) == ["X-AWAY"]  # an institution's own, filtered alike


async def test_a_rebate_on_a_claim_treated_elsewhere_is_clear_to_the_treating_regions_price_auditor_only(
    elsewhere: Elsewhere,
) -> None:
    """The rebate is the list price less the treating region's confidential catalogue price: the
    insuring region's price auditor sees the settlement, and the rebate masked.
    """
    service = elsewhere.service
    formulary = second_region_data()["formulary"]
    # INS-A's confidential price in the treating region's catalogue (at home it is 98000.00)
    formulary["commercial"].append({"drug": CAR_T, "insurer": "INS-A", "settlement_price": TREATING_PRICE})
    document = {"region": SECOND_REGION, "effective_from": "2026-02-01", "formulary": formulary}
    assert (await service.load(document))["__typename"] == "LoadSummary"
    treating_cashier = service.as_(service.tokens.mint("hospital", TREATING_HOSPITAL))
    car_t = await settle(
        treating_cashier,
        claim(
            "X-CART",
            person=MEMBER,
            institution=TREATING_HOSPITAL,
            diagnoses=("C83.3",),
            lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}],
        ),
    )
    assert owed(car_t)["INS-A"] == ("84000.00", "0.00", "84000.00")  # INS-A has no pool there

    def rebates(seen: dict[str, Any] | None) -> list[tuple[str, str | None, str]]:
        assert seen is not None
        return [(r["insurer"], r["amount"]["value"], r["amount"]["disclosure"]) for r in seen["rebates"]]

    insuring = elsewhere.supervisor(REGION, grants=("price_audit",))
    treating = elsewhere.supervisor(SECOND_REGION, grants=("price_audit",))
    insurer = service.as_(service.tokens.payer("insurer", "INS-A"))
    assert rebates(await elsewhere.settlement(insuring, car_t["id"])) == [("INS-A", None, "MASKED")]
    assert rebates(await elsewhere.settlement(treating, car_t["id"])) == [("INS-A", REBATE, "CLEAR")]
    assert rebates(await elsewhere.settlement(insurer, car_t["id"])) == [("INS-A", REBATE, "CLEAR")]
    assert (await insuring.graphql(STATEMENT))["rebateStatement"] == []
    assert (await treating.graphql(STATEMENT))["rebateStatement"] == [
        {"insurer": "INS-A", "drug": CAR_T, "amount": REBATE, "units": 1}
    ]
    shown_to_insuring = str(await insuring.graphql(ONE_SETTLEMENT, {"id": car_t["id"]}))
    assert TREATING_PRICE not in shown_to_insuring and REBATE not in shown_to_insuring
