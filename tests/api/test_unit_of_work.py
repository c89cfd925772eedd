"""The unit of work under the settle path: what a settlement costs in round trips, that it reads
back as the very value it settled as, that concurrent claims of one person never deadlock, and
that a pool drawn down between a claim's read and its commit funds the claim on its locked balance.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import pytest

from adjudication import Visit
from api.auth import Principal, Role
from api.crypto.envelope import FieldCipher
from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
from api.db.pools import Pools
from api.db.references import VersionCache
from api.db.session import create_engine, create_sessionmaker
from api.db.unit_of_work import UnitOfWork
from api.services import audit, queries, settlement
from api.services.requests import LineInput, claim_request
from api.services.runtime import Runtime
from tests.api.conftest import Service
from tests.api.documents import (
    ACCUMULATORS,
    BY_SERIAL,
    CAR_T,
    EMPLOYEE,
    GENERIC_A,
    HOSPITAL,
    MEMBER,
    POOLS,
    RESIDENT,
    SETTLE,
    SMALL_HOSPITAL,
    TRASTUZUMAB,
    claim,
    codes,
)

CASHIER = Principal("cashier", Role.HOSPITAL, HOSPITAL, frozenset(), frozenset(), "cashier-token", "test")


@asynccontextmanager
async def runtime_of(service: Service) -> AsyncIterator[Runtime]:
    """A runtime of the service's own over its database, as the app's lifespan builds one."""
    engine = create_engine(service.database_url)
    sessions = create_sessionmaker(engine)
    keyring = FileKeyring(service.tokens.keyring_dir, Suite.AES_256_GCM, create_missing=False)
    audit.bind(sessions, keyring)
    try:
        yield Runtime(sessions, VersionCache.bounded(), FieldCipher(keyring, sessions), lambda: datetime.now(UTC))
    finally:
        await engine.dispose()


def two_line_claim(serial: str, person: str = MEMBER) -> Any:
    """A hospital claim of two lines with their codes, one drug of the commercial catalogue."""
    return claim_request(
        institution=HOSPITAL,
        serial=serial,
        person=person,
        service_date=date(2026, 3, 15),
        visit=Visit.INPATIENT,
        diagnoses=["C83.3"],
        lines=[
            LineInput(CAR_T, 1, "120000.00", codes(CAR_T, 1)),
            LineInput(TRASTUZUMAB, 2, "1600.00", codes(TRASTUZUMAB, 2)),
        ],
    )


async def test_a_settlement_takes_at_most_twelve_round_trips_to_postgresql(service: Service, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("round trips are PostgreSQL's cost; SQLite is in the process")
    async with runtime_of(service) as runtime:
        await settlement.settle(runtime, CASHIER, two_line_claim("RT-WARM"))  # versions cached, statements prepared
        settled = await settlement.settle(runtime, CASHIER, two_line_claim("RT-1", person=EMPLOYEE))

        assert settled.serial == "RT-1"
        assert runtime.round_trips.last <= 12, runtime.round_trips


async def test_a_settlement_reads_back_as_the_very_value_it_settled_as(service: Service) -> None:
    async with runtime_of(service) as runtime:
        settled = await settlement.settle(runtime, CASHIER, two_line_claim("RB-1"))
        stored = await queries.settlement(runtime, CASHIER, settled.id)

    assert stored == settled
    assert [rebate.insurer for rebate in settled.rebates] == ["INS-A"]  # kept, its amount masked for a cashier
    assert settled.rebates[0].computable and settled.rebates[0].amount_fen is None


async def test_a_plan_that_accepted_the_person_keeps_its_row_and_one_that_refused_them_without_a_base_keeps_none(
    service: Service,
) -> None:
    settled = (await service.graphql(SETTLE, {"claim": claim("EX-1", person=EMPLOYEE)}))["settle"]
    stored = (await service.graphql(BY_SERIAL, {"institution": HOSPITAL, "serial": "EX-1"}))["settlementBySerial"]

    funds = {fund["plan"]: fund for fund in stored["explanation"]["funds"]}
    assert stored["explanation"] == settled["explanation"]
    assert "BASIC-RES" not in funds and "MA" not in funds and "PAP" not in funds  # refused the employee, no base
    serious = funds["SERIOUS"]  # accepted, paid nothing: its base and deductible explain why
    in_scope_left = "1740.00"  # the in-scope 2700.00 less basic's 960.00, all of it under the 15000.00 deductible
    assert (serious["amount"], serious["base"], serious["deductibleApplied"]) == ("0.00", in_scope_left, in_scope_left)
    assert [reason["code"] for reason in serious["reasons"]] == ["DEDUCTIBLE"]


async def test_first_of_year_claims_of_one_person_settled_at_once_never_deadlock(service: Service) -> None:
    """Each pair creates the person's year totals (accumulators, units) at the same moment, from
    lines listed in opposite orders: the rows are created and locked in one order all the same.
    """

    def request(serial: str, person: str, flipped: bool) -> dict[str, Any]:
        lines = [
            {"drug": TRASTUZUMAB, "quantity": 1, "unitPrice": "1500.00"},
            {"drug": GENERIC_A, "quantity": 10, "unitPrice": "30.00", "split": True, "traceCodes": codes(GENERIC_A, 1)},
        ]
        return claim(serial, person=person, diagnoses=("C50.9",), lines=lines[::-1] if flipped else lines)

    people = (MEMBER, RESIDENT, EMPLOYEE)
    results = await asyncio.gather(
        *(
            service.graphql(SETTLE, {"claim": request(f"DL-{person}-{n}", person, flipped=bool(n))})
            for person in people
            for n in range(2)
        )
    )

    assert [result["settle"]["__typename"] for result in results] == ["Settlement"] * 6, results
    for person in people:
        totals = (await service.graphql(ACCUMULATORS, {"psn": person, "year": 2026}))["person"]
        assert {units["drug"]: units["units"] for units in totals["unitsReceived"]} == {TRASTUZUMAB: 2, GENERIC_A: 20}


async def test_a_pool_drawn_down_between_the_read_and_the_commit_is_funded_again_on_its_locked_balance(
    service: Service, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first claim reads a pool that covers its share; before its last statement draws, a
    second claim at the same institution settles and leaves less than that share: the first
    runs again on the locked pool, draws what is left and owes the rest.
    """
    if backend != "postgresql":
        pytest.skip("on SQLite the pools are read under the database's one lock")
    cashier = Principal("cashier", Role.HOSPITAL, SMALL_HOSPITAL, frozenset(), frozenset(), "small-token", "test")

    def basic_claim(serial: str, person: str) -> Any:
        return claim_request(
            institution=SMALL_HOSPITAL,
            serial=serial,
            person=person,
            service_date=date(2026, 3, 15),
            visit=Visit.OUTPATIENT,
            diagnoses=["I10"],
            lines=[LineInput(GENERIC_A, 20, "250.00", [])],
        )

    await service.load({"trace_policies": [{"institution": SMALL_HOSPITAL, "drug": GENERIC_A, "no_code_stock": True}]})
    async with runtime_of(service) as runtime:
        first, second = basic_claim("MOVED-1", EMPLOYEE), basic_claim("MOVED-2", RESIDENT)
        share_of_first = sum(f.amount_fen for f in (await settlement.pre_settle(runtime, cashier, first)).funds)
        share_of_second = sum(f.amount_fen for f in (await settlement.pre_settle(runtime, cashier, second)).funds)
        granted = share_of_first + share_of_second - 100  # covers either alone, not both: 1.00 short
        grant = {"reference": "G-MOVED", "payer": "NHSA-310100", "institution": SMALL_HOSPITAL}
        await service.load({"grants": [grant | {"amount": f"{granted // 100}.{granted % 100:02d}"}]})
        draw_at_commit, commit = Pools.draw_at_commit, UnitOfWork._commit
        meanwhile: list[asyncio.Future[Any]] = []

        def the_second_starts(self: Pools, pools: Any, funding: Any) -> None:
            if not meanwhile:
                meanwhile.append(asyncio.ensure_future(settlement.settle(runtime, cashier, second)))
            draw_at_commit(self, pools, funding)

        async def and_settles_first(self: UnitOfWork) -> None:
            if meanwhile and meanwhile[0] is not asyncio.current_task() and not meanwhile[0].done():
                await meanwhile[0]
            await commit(self)

        monkeypatch.setattr(Pools, "draw_at_commit", the_second_starts)
        monkeypatch.setattr(UnitOfWork, "_commit", and_settles_first)
        settled_first = await settlement.settle(runtime, cashier, first)

    assert meanwhile[0].result().serial == "MOVED-2"
    funded = [fund for fund in settled_first.funds if fund.amount_fen]
    assert [fund.payer for fund in funded] == ["NHSA-310100"]
    assert (funded[0].drawn_fen, funded[0].receivable_fen) == (granted - share_of_second, 100)
    pools = (await service.as_(service.tokens.admin).graphql(POOLS, {"code": SMALL_HOSPITAL}))["institution"][
        "prepaymentPools"
    ]
    assert [pool["balance"] for pool in pools if pool["payer"] == "NHSA-310100"] == ["0.00"]
