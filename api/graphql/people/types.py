from __future__ import annotations

import strawberry

from api.graphql.scalars import Yuan
from api.services.queries import PoolView


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


def pool_type(pool: PoolView) -> PrepaymentPool:
    return PrepaymentPool(
        payer=pool.payer,
        institution=pool.institution,
        granted=Yuan(pool.granted_fen),
        drawn=Yuan(pool.drawn_fen),
        returned=Yuan(pool.returned_fen),
        balance=Yuan(pool.balance_fen),
    )
