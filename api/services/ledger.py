"""The double-entry ledger: accounts, why money moved, and the invariants that must always hold.

Every transaction is a set of postings in integer fen that sums to zero (a credit is positive,
a debit negative). Accounts:

    payer:{payer}:treasury              the payer's own money, from which prepayments are granted
    payer:{payer}:pool@{institution}    a prepayment pool (预付金): grants in, draws out, returns in
    payer:{payer}:payable@{institution} what the payer owes the institution beyond its pool
    institution:{institution}:claims    what the institution was paid for the drugs it dispensed
    patient:{psn_no}:cash               what the patient paid at the window
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import models
from api.ids import uuid7


class Why(StrEnum):
    """Why money moved. A reversal posts the exact opposite under the opposite code."""

    PREPAYMENT_GRANT = "PREPAYMENT_GRANT"
    PATIENT_SHARE = "PATIENT_SHARE"
    POOL_DRAW = "POOL_DRAW"
    RECEIVABLE = "RECEIVABLE"
    PATIENT_REFUND = "PATIENT_REFUND"
    POOL_RETURN = "POOL_RETURN"
    RECEIVABLE_CANCELLED = "RECEIVABLE_CANCELLED"


REVERSAL_OF = {
    Why.PATIENT_SHARE: Why.PATIENT_REFUND,
    Why.POOL_DRAW: Why.POOL_RETURN,
    Why.RECEIVABLE: Why.RECEIVABLE_CANCELLED,
}


def treasury(payer: str) -> str:
    return f"payer:{payer}:treasury"


def pool(payer: str, institution: str) -> str:
    return f"payer:{payer}:pool@{institution}"


def payable(payer: str, institution: str) -> str:
    return f"payer:{payer}:payable@{institution}"


def institution_claims(institution: str) -> str:
    return f"institution:{institution}:claims"


def patient_cash(psn_no: str) -> str:
    return f"patient:{psn_no}:cash"


class Transaction:
    """Postings being assembled; `rows()` refuses to hand over an unbalanced transaction."""

    def __init__(
        self, posted_at: datetime, *, settlement_id: uuid.UUID | None = None, grant_id: uuid.UUID | None = None
    ) -> None:
        self.id = uuid7()
        self.posted_at = posted_at
        self.settlement_id = settlement_id
        self.grant_id = grant_id
        self._postings: list[tuple[str, int, Why]] = []

    def transfer(self, debit: str, credit: str, amount_fen: int, why: Why) -> None:
        if amount_fen < 0:
            raise ValueError("a transfer moves a non-negative amount")
        if amount_fen:
            self._postings.append((debit, -amount_fen, why))
            self._postings.append((credit, amount_fen, why))

    def add(self, account: str, amount_fen: int, why: Why) -> None:
        """One posting; the caller balances the transaction (used by reversals)."""
        self._postings.append((account, amount_fen, why))

    def rows(self) -> list[dict[str, Any]]:
        if sum(amount for _, amount, _ in self._postings) != 0:
            raise AssertionError("an unbalanced ledger transaction")
        return [
            {
                "id": uuid7(),
                "transaction_id": self.id,
                "settlement_id": self.settlement_id,
                "grant_id": self.grant_id,
                "account": account,
                "amount_fen": amount,
                "code": why.value,
                "posted_at": self.posted_at,
            }
            for account, amount, why in self._postings
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
        key = (row["person_id"], row["year"], row["plan_code"])
        actual_totals = (row["deductible_met_fen"], row["base_spent_fen"], row["paid_fen"], row["claims"])
        if actual_totals != expected_totals.pop(key, (0, 0, 0, 0)):
            violations.append(Violation("accumulators equal the sum of live settlements", f"{key}: {actual_totals}"))
    for key in expected_totals:
        violations.append(Violation("accumulators equal the sum of live settlements", f"{key}: no accumulator row"))

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
        key = (row["person_id"], row["year"], row["drug_code"])
        if row["units"] != expected_units.pop(key, 0):
            violations.append(Violation("units received equal the sum of live settlements", f"{key}: {row['units']}"))
    for key in expected_units:
        violations.append(Violation("units received equal the sum of live settlements", f"{key}: no row"))
    return violations
