"""Settling at the cashier window: the split, the money, pre-settlement, idempotency, reversal."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from adjudication.ledger import REVERSAL_OF, Posting, Why, net_by_account
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from tests.api.conftest import Service
from tests.api.documents import (
    ACCUMULATORS,
    BY_SERIAL,
    CAR_T,
    EMPLOYEE,
    HOSPITAL,
    MEMBER,
    POOLS,
    PRE_SETTLE,
    REVERSE,
    SETTLE,
    claim,
)


async def settle(service: Service, variables: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (await service.graphql(SETTLE, {"claim": variables}))["settle"]
    return result


async def pools(service: Service, institution: str = HOSPITAL) -> dict[str, dict[str, str]]:
    data = await service.graphql(POOLS, {"code": institution})
    return {pool["payer"]: pool for pool in data["institution"]["prepaymentPools"]}


async def accumulators(service: Service, person: str = MEMBER, year: int = 2026) -> dict[str, Any]:
    data = await service.graphql(ACCUMULATORS, {"psn": person, "year": year})
    return {entry["plan"]: entry for entry in data["person"]["accumulators"]} | {
        f"units:{entry['drug']}": entry["units"] for entry in data["person"]["unitsReceived"]
    }


def funds(settlement: dict[str, Any]) -> dict[str, str]:
    return {fund["plan"]: fund["amount"] for fund in settlement["explanation"]["funds"]}


async def ledger_postings(service: Service, settlement_id: str) -> list[Posting]:
    """The stored ledger postings of one settlement (its own and its reversal's), in a stable order."""
    engine = create_engine(service.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            entries = models.LedgerEntry.__table__
            query = select(entries).where(entries.c.settlement_id == uuid.UUID(settlement_id))
            rows = (await session.execute(query)).mappings().all()
    finally:
        await engine.dispose()
    postings = [Posting(row["account"], row["amount_fen"], Why(row["code"])) for row in rows]
    return sorted(postings, key=lambda p: (p.account, p.why, p.amount_fen))


async def test_a_claim_settles_as_scenario_md_computes_it_and_moves_the_money(service: Service) -> None:
    settled = await settle(service, claim("S-1"))

    assert settled["__typename"] == "Settlement"
    assert settled["status"] == "SETTLED"
    explanation = settled["explanation"]
    assert (explanation["total"], explanation["aboveStandard"], explanation["selfPayFirst"]) == (
        "3200.00",
        "200.00",
        "300.00",
    )
    assert (explanation["inScope"], explanation["outOfScope"], explanation["patientCash"]) == (
        "2700.00",
        "0.00",
        "1220.00",
    )
    assert funds(settled) == {  # BASIC-RES refused the employee and had no base: it is not kept
        "PAP": "0.00",
        "BASIC-EMP": "960.00",
        "SERIOUS": "0.00",
        "HMB": "0.00",
        "MA": "1020.00",
    }
    line = explanation["lines"][0]
    assert {p["plan"]: p["amount"] for p in line["payments"]} == {"BASIC-EMP": "960.00", "MA": "1020.00"}
    assert [r["code"] for r in line["reasons"]] == ["ABOVE_STANDARD"]
    fund = {f["plan"]: f for f in explanation["funds"]}
    assert (fund["BASIC-EMP"]["drawnFromPrepayment"], fund["BASIC-EMP"]["receivable"]) == ("960.00", "0.00")

    money = await pools(service)
    assert money["NHSA-310100"] == {
        "payer": "NHSA-310100",
        "granted": "100000.00",
        "drawn": "960.00",
        "returned": "0.00",
        "balance": "99040.00",
    }
    assert money["MA-UNION"]["balance"] == "3980.00"
    totals = await accumulators(service)
    assert totals["BASIC-EMP"] == {
        "plan": "BASIC-EMP",
        "deductibleMet": "1500.00",
        "baseSpent": "1200.00",
        "paid": "960.00",
        "claims": 1,
    }
    assert totals["units:XL01XC00001"] == 2


async def test_what_the_pool_cannot_cover_becomes_a_receivable(service: Service) -> None:
    car_t = claim("S-CAR-T", diagnoses=("C83.3",), lines=[{"drug": CAR_T, "quantity": 1, "unitPrice": "120000.00"}])

    settled = await settle(service, car_t)

    hmb = next(f for f in settled["explanation"]["funds"] if f["plan"] == "HMB")
    assert (hmb["amount"], hmb["drawnFromPrepayment"], hmb["receivable"]) == ("84000.00", "1000.00", "83000.00")
    assert (await pools(service))["INS-A"]["balance"] == "0.00"


async def test_pre_settlement_shows_the_full_split_and_writes_nothing(service: Service) -> None:
    before = await pools(service)

    request = claim("S-PRE")
    previewed = (await service.graphql(PRE_SETTLE, {"claim": request}))["preSettle"]

    assert previewed["status"] == "PRE_SETTLED"
    assert funds(previewed)["MA"] == "1020.00"
    assert previewed["explanation"]["patientCash"] == "1220.00"
    assert await pools(service) == before
    assert await accumulators(service) == {}
    assert (await service.graphql(BY_SERIAL, {"institution": HOSPITAL, "serial": "S-PRE"}))[
        "settlementBySerial"
    ] is None
    assert (await settle(service, request))["explanation"] == previewed["explanation"]


async def test_the_same_serial_and_body_returns_the_first_settlement_and_writes_nothing(service: Service) -> None:
    request = claim("S-1")
    first = await settle(service, request)
    # the same request, spelled differently: amounts compare as money, not as text
    again = copy.deepcopy(request)
    again["lines"][0]["unitPrice"] = "1600.0"

    replayed = await settle(service, again)

    assert replayed == first
    assert (await pools(service))["NHSA-310100"]["drawn"] == "960.00"
    assert (await accumulators(service))["BASIC-EMP"]["claims"] == 1


async def test_the_same_serial_with_another_body_is_an_idempotency_conflict(service: Service) -> None:
    first = await settle(service, claim("S-1"))
    other = claim("S-1")
    other["lines"][0]["quantity"] = 3

    refused = await settle(service, other)

    assert refused["__typename"] == "IdempotencyConflict"
    assert (refused["code"], refused["field"], refused["settlementId"]) == (
        "IDEMPOTENCY_CONFLICT",
        "claim.serial",
        first["id"],
    )
    assert (await pools(service))["NHSA-310100"]["drawn"] == "960.00"


async def test_a_reversal_subtracts_exactly_what_the_settlement_added_and_returns_the_pool_draw(
    service: Service,
) -> None:
    first = await settle(service, claim("S-1", person=EMPLOYEE))
    second = await settle(service, claim("S-2", person=EMPLOYEE))
    assert funds(second)["BASIC-EMP"] == "2160.00"  # the first met the deductible: 0.80 x 2700.00

    reversal = (await service.graphql(REVERSE, {"input": {"id": first["id"], "reason": "wrong patient"}}))[
        "reverseSettlement"
    ]

    assert reversal["__typename"] == "Reversal"
    assert reversal["settlement"]["status"] == "REVERSED"
    assert reversal["settlement"]["reversalReason"] == "wrong patient"
    assert [later["serial"] for later in reversal["laterSettlements"]] == ["S-2"]
    totals = await accumulators(service, EMPLOYEE)
    assert totals["BASIC-EMP"] == {
        "plan": "BASIC-EMP",
        "deductibleMet": "0.00",
        "baseSpent": "2700.00",
        "paid": "2160.00",
        "claims": 1,
    }
    assert totals["units:XL01XC00001"] == 2
    money = (await pools(service))["NHSA-310100"]
    assert (money["drawn"], money["returned"], money["balance"]) == ("3120.00", "960.00", "97840.00")


async def test_a_settlement_posts_the_whole_bill_to_the_institution_and_its_reversal_the_exact_opposite(
    service: Service,
) -> None:
    settled = await settle(service, claim("S-1"))
    await service.graphql(REVERSE, {"input": {"id": settled["id"], "reason": "wrong drug"}})

    postings = await ledger_postings(service, settled["id"])
    settlement = [p for p in postings if p.why in REVERSAL_OF]
    reversal = [p for p in postings if p.why not in REVERSAL_OF]

    assert net_by_account(settlement) == {
        f"institution:{HOSPITAL}:claims": 320_000,
        f"patient:{MEMBER}:cash": -122_000,
        f"payer:MA-UNION:pool@{HOSPITAL}": -102_000,
        f"payer:NHSA-310100:pool@{HOSPITAL}": -96_000,
    }
    opposite = [Posting(p.account, -p.amount_fen, REVERSAL_OF[p.why]) for p in settlement]
    assert reversal == sorted(opposite, key=lambda p: (p.account, p.why, p.amount_fen))


async def test_a_settlement_is_reversed_once(service: Service) -> None:
    first = await settle(service, claim("S-1"))
    await service.graphql(REVERSE, {"input": {"id": first["id"], "reason": "refund"}})

    again = (await service.graphql(REVERSE, {"input": {"id": first["id"], "reason": "refund"}}))["reverseSettlement"]

    assert (again["__typename"], again["code"], again["settlementId"]) == (
        "AlreadyReversed",
        "ALREADY_REVERSED",
        first["id"],
    )


async def test_a_cashier_whose_call_timed_out_can_ask_and_reverse_by_serial(service: Service) -> None:
    await settle(service, claim("S-LOST"))  # the response never reached the window

    found = (await service.graphql(BY_SERIAL, {"institution": HOSPITAL, "serial": "S-LOST"}))["settlementBySerial"]
    assert found["status"] == "SETTLED"
    reversal = (
        await service.graphql(REVERSE, {"input": {"institution": HOSPITAL, "serial": "S-LOST", "reason": "冲正"}})
    )["reverseSettlement"]

    assert reversal["settlement"]["id"] == found["id"]
    assert reversal["settlement"]["status"] == "REVERSED"
    assert (await pools(service))["NHSA-310100"]["balance"] == "100000.00"


async def test_a_serial_reversed_before_it_arrived_never_settles(service: Service) -> None:
    reversal = (
        await service.graphql(REVERSE, {"input": {"institution": HOSPITAL, "serial": "S-LATE", "reason": "冲正"}})
    )["reverseSettlement"]
    assert (reversal["voidedSerial"], reversal["settlement"]) == (True, None)

    late = await settle(service, claim("S-LATE"))

    assert (late["__typename"], late["code"]) == ("AlreadyReversed", "ALREADY_REVERSED")
    assert (await service.graphql(BY_SERIAL, {"institution": HOSPITAL, "serial": "S-LATE"}))[
        "settlementBySerial"
    ] is None


async def test_a_reversal_needs_a_reason_and_a_target(service: Service) -> None:
    no_reason = (await service.graphql(REVERSE, {"input": {"institution": HOSPITAL, "serial": "S-1", "reason": " "}}))[
        "reverseSettlement"
    ]
    nothing = (await service.graphql(REVERSE, {"input": {"reason": "refund"}}))["reverseSettlement"]
    unknown = (await service.graphql(REVERSE, {"input": {"id": "not-an-id", "reason": "refund"}}))["reverseSettlement"]

    assert (no_reason["code"], no_reason["field"]) == ("MISSING_FIELD", "input.reason")
    assert (nothing["code"], nothing["field"]) == ("MISSING_FIELD", "input")
    assert (unknown["__typename"], unknown["code"]) == ("NotFound", "NOT_FOUND")


async def test_a_copy_that_cannot_wait_for_the_first_gets_a_retryable_in_progress(
    service: Service, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("on SQLite every writer queues for the database lock instead")
    import asyncpg

    from api.db.statements import advisory_key

    # the first request, still in flight, holds the serial's key
    first = await asyncpg.connect(make_url(service.database_url).set(drivername="postgresql").render_as_string(False))
    try:
        async with first.transaction():
            await first.execute("SELECT pg_advisory_xact_lock($1)", advisory_key("settlement", HOSPITAL, "S-BUSY"))
            copy = await settle(service, claim("S-BUSY"))
    finally:
        await first.close()

    assert (copy["__typename"], copy["code"], copy["retryable"]) == ("InProgress", "IN_PROGRESS", True)
    assert (await settle(service, claim("S-BUSY")))["__typename"] == "Settlement"  # the retry goes through
