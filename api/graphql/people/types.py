from __future__ import annotations

from typing import Any

import strawberry

from api.graphql.scalars import Yuan


@strawberry.type(description="One person's totals under one plan in one year.")
class AccumulatorEntry:
    plan: str
    year: int
    deductible_met: Yuan
    base_spent: Yuan
    paid: Yuan
    claims: int


@strawberry.type
class UnitsReceived:
    drug: str
    year: int
    units: int


@strawberry.type(description="Money a payer advanced to an institution; settlements draw on it.")
class PrepaymentPool:
    payer: str
    institution: str
    granted: Yuan
    drawn: Yuan
    returned: Yuan
    balance: Yuan


def pool_type(row: dict[str, Any]) -> PrepaymentPool:
    return PrepaymentPool(
        payer=row["payer_code"],
        institution=row["institution_code"],
        granted=row["granted_fen"],
        drawn=row["drawn_fen"],
        returned=row["returned_fen"],
        balance=row["balance_fen"],
    )
