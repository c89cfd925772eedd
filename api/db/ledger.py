"""The ledger in storage: a transaction's postings as rows, and the invariants that must always
hold over everything stored.

The accounts, the codes (`Why`) and the postings of a settlement, reversal, refund or grant are
pure values decided in `adjudication.ledger`; this module only writes them down and checks the
stored ledger against the pools, accumulators and settlements (after every test).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication.ledger import Posting, balanced, pool
from api.db import models
from api.ids import uuid7


def entry_rows(
    postings: Sequence[Posting],
    posted_at: datetime,
    *,
    settlement_id: uuid.UUID | None = None,
    grant_id: uuid.UUID | None = None,
) -> list[dict[str, Any]]:
    """The `ledger_entries` rows of one transaction: a fresh transaction id, a row per posting.
    An unbalanced set is refused (InvariantError) before anything is written.
    """
    transaction_id = uuid7()
    return [
        {
            "id": uuid7(),
            "transaction_id": transaction_id,
            "settlement_id": settlement_id,
            "grant_id": grant_id,
            "account": posting.account,
            "amount_fen": posting.amount_fen,
            "code": posting.why.value,
            "posted_at": posted_at,
        }
        for posting in balanced(postings)
    ]


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    detail: str


async def check_invariants(session: AsyncSession) -> Sequence[Violation]:
    """Everything that must hold after any sequence of settlements, reversals and grants."""
    violations: list[Violation] = []
    ledger = models.LedgerEntry.__table__
    total = (await session.execute(select(func.coalesce(func.sum(ledger.c.amount_fen), 0)))).scalar_one()
    if total != 0:
        violations.append(Violation("ledger sums to zero", f"the ledger sums to {total}"))
    unbalanced = (
        (
            await session.execute(
                select(ledger.c.transaction_id)
                .group_by(ledger.c.transaction_id)
                .having(func.sum(ledger.c.amount_fen) != 0)
            )
        )
        .scalars()
        .all()
    )
    for transaction_id in unbalanced:
        violations.append(Violation("each transaction balances", f"transaction {transaction_id}"))

    pools = models.PrepaymentPool.__table__
    grants = models.PrepaymentGrant.__table__
    payers = models.SettlementPayer.__table__
    settlements = models.Settlement.__table__
    balances = dict(
        (
            await session.execute(select(ledger.c.account, func.sum(ledger.c.amount_fen)).group_by(ledger.c.account))
        ).all()
    )
    granted = dict(
        (
            await session.execute(select(grants.c.pool_id, func.sum(grants.c.amount_fen)).group_by(grants.c.pool_id))
        ).all()
    )
    draws = (
        await session.execute(
            select(
                payers.c.payer_code, settlements.c.institution_code, settlements.c.status, func.sum(payers.c.drawn_fen)
            )
            .join(settlements, settlements.c.id == payers.c.settlement_id)
            .group_by(payers.c.payer_code, settlements.c.institution_code, settlements.c.status)
        )
    ).all()
    drawn: dict[tuple[str, str], int] = {}
    returned: dict[tuple[str, str], int] = {}
    for payer_code, institution_code, status, amount in draws:
        key = (payer_code, institution_code)
        drawn[key] = drawn.get(key, 0) + amount
        if status == "reversed":
            returned[key] = returned.get(key, 0) + amount
    for row in (await session.execute(select(pools))).mappings():
        key = (row["payer_code"], row["institution_code"])
        name = f"pool {key[0]}@{key[1]}"
        expected = {
            "granted": granted.get(row["id"], 0),
            "drawn": drawn.get(key, 0),
            "returned": returned.get(key, 0),
        }
        actual = {"granted": row["granted_fen"], "drawn": row["drawn_fen"], "returned": row["returned_fen"]}
        if actual != expected:
            violations.append(Violation("pool movements match their records", f"{name}: {actual} != {expected}"))
        if row["balance_fen"] != row["granted_fen"] - row["drawn_fen"] + row["returned_fen"]:
            violations.append(Violation("pool balance = grants - draws + returns", name))
        ledger_balance = balances.get(pool(*key), 0)
        if row["balance_fen"] != ledger_balance:
            violations.append(
                Violation("pool balance matches the ledger", f"{name}: {row['balance_fen']} != {ledger_balance}")
            )
        if row["balance_fen"] < 0:
            violations.append(Violation("no pool is overdrawn", name))

    accumulators = models.Accumulator.__table__
    changes = models.SettlementAccumulatorChange.__table__
    live = (
        await session.execute(
            select(
                settlements.c.person_id,
                settlements.c.year,
                changes.c.plan_code,
                func.sum(changes.c.deductible_met_fen),
                func.sum(changes.c.base_spent_fen),
                func.sum(changes.c.paid_fen),
                func.sum(changes.c.claims),
            )
            .join(settlements, settlements.c.id == changes.c.settlement_id)
            .where(settlements.c.status == "settled")
            .group_by(settlements.c.person_id, settlements.c.year, changes.c.plan_code)
        )
    ).all()
    expected_totals = {(row[0], row[1], row[2]): tuple(row[3:]) for row in live}
    for row in (await session.execute(select(accumulators))).mappings():
        year_key = (row["person_id"], row["year"], row["plan_code"])
        actual_totals = (row["deductible_met_fen"], row["base_spent_fen"], row["paid_fen"], row["claims"])
        if actual_totals != expected_totals.pop(year_key, (0, 0, 0, 0)):
            violations.append(
                Violation("accumulators equal the sum of live settlements", f"{year_key}: {actual_totals}")
            )
    for year_key in expected_totals:
        violations.append(
            Violation("accumulators equal the sum of live settlements", f"{year_key}: no accumulator row")
        )

    units = models.UnitsReceived.__table__
    lines = models.SettlementLine.__table__
    received = (
        await session.execute(
            select(settlements.c.person_id, settlements.c.year, lines.c.drug_code, func.sum(lines.c.quantity))
            .join(settlements, settlements.c.id == lines.c.settlement_id)
            .where(settlements.c.status == "settled")
            .group_by(settlements.c.person_id, settlements.c.year, lines.c.drug_code)
        )
    ).all()
    expected_units = {(row[0], row[1], row[2]): row[3] for row in received}
    for row in (await session.execute(select(units))).mappings():
        year_key = (row["person_id"], row["year"], row["drug_code"])
        if row["units"] != expected_units.pop(year_key, 0):
            violations.append(
                Violation("units received equal the sum of live settlements", f"{year_key}: {row['units']}")
            )
    for year_key in expected_units:
        violations.append(Violation("units received equal the sum of live settlements", f"{year_key}: no row"))
    return violations
