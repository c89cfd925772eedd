"""Prepayment pools (预付金): what each payer has advanced to an institution, drawn down by the
claims settled there. Locked last of all (the unit of work's lock order), for as short a time as
can be: a pool is shared by every claim at its institution.

Where every payer's share is within its pool's balance as read (the claim's references read the
institution's pools, without a lock), the draws need no exact balance: `fund` draws each share
whole whatever the balance above it. So they are made by the transaction's last statement
(`draw_at_commit`), which locks each pool and draws on it only if it still holds the share; the
pool is held from there to the commit alone. If one no longer does, the unit of work runs the
work again, and then the pools are locked first and funded on their exact balances (`lock`,
`draw`), as they are for a reversal and wherever a share exceeds what a pool held when read.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from adjudication import Funding
from api.db import models
from api.db.base import table_of
from api.db.writes import Write

if TYPE_CHECKING:
    from api.db.unit_of_work import UnitOfWork

_COLUMNS = "id, payer_code, granted_fen, drawn_fen, returned_fen, balance_fen"
_DRAW_IF_COVERED = """WITH locked AS (
  SELECT id FROM prepayment_pools WHERE id = ANY($1::uuid[]) ORDER BY payer_code FOR UPDATE
), drawn AS (
  UPDATE prepayment_pools AS p SET drawn_fen = p.drawn_fen + v.drawn, balance_fen = p.balance_fen - v.drawn
  FROM unnest($1::uuid[], $2::int8[]) AS v(id, drawn)
  WHERE p.id = v.id AND p.id IN (SELECT id FROM locked) AND p.balance_fen >= v.drawn
  RETURNING p.id)
SELECT count(*) FROM drawn"""
"""The pools locked in payer order (as `lock` does), then drawn on where they still hold the draw."""
_LOCK = f"""SELECT {_COLUMNS} FROM prepayment_pools
WHERE institution_code = $1 AND payer_code = ANY($2::text[]) ORDER BY payer_code FOR UPDATE"""


@dataclass(frozen=True, slots=True)
class Pool:
    """One payer's pool at one institution; balance = granted − drawn + returned."""

    id: uuid.UUID
    payer: str
    granted_fen: int
    drawn_fen: int
    returned_fen: int
    balance_fen: int


class Pools:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def lock(self, institution: str, payers: Sequence[str]) -> dict[str, Pool]:
        """The pools of `payers` here, locked in payer order (lock 4, the last)."""
        if not payers:
            return {}
        if self.uow.postgresql:
            rows = await self.uow.fetch(_LOCK, institution, sorted(payers))
            return {row[1]: Pool(*row) for row in rows}
        return await self.read(institution, payers)

    async def read(self, institution: str, payers: Sequence[str]) -> dict[str, Pool]:
        """The same, without a lock (a pre-settlement's view)."""
        if not payers:
            return {}
        table = table_of(models.PrepaymentPool)
        columns = [table.c[name] for name in _COLUMNS.split(", ")]
        statement = select(*columns).where(table.c.institution_code == institution, table.c.payer_code.in_(payers))
        rows = await self.uow.rows(statement.order_by(table.c.payer_code))
        return {row[1]: Pool(*row) for row in rows}

    @staticmethod
    def cover(pools: Mapping[str, Pool], shares: Mapping[str, int]) -> bool:
        """Whether each payer's share is within its pool's balance (as read)."""
        return all(payer in pools and pools[payer].balance_fen >= share for payer, share in shares.items() if share)

    def draw_at_commit(self, pools: Mapping[str, Pool], funding: Funding) -> None:
        """The draws of a funding whose every share was covered, made by the last statement
        before the commit, each only if its pool still covers it (see the module's docstring).
        """
        draws = [(pools[draw.payer].id, draw.drawn_fen) for draw in funding.draws if draw.drawn_fen]
        if draws:
            ids, amounts = [pool_id for pool_id, _ in draws], [amount for _, amount in draws]
            self.uow.end_with(_DRAW_IF_COVERED, ids, amounts, expect=len(draws))

    def draw(self, pools: Mapping[str, Pool], funding: Funding) -> None:
        """Stage each payer's draw from its (locked) pool."""
        drawn = [
            (pools[draw.payer].id, pools[draw.payer].drawn_fen + draw.drawn_fen, draw.balance_after_fen)
            for draw in funding.draws
            if draw.drawn_fen
        ]
        self.uow.stage(Write.updates(table_of(models.PrepaymentPool), ("drawn_fen", "balance_fen"), drawn))

    def give_back(self, pools: Mapping[str, Pool], returned: Mapping[str, int]) -> None:
        """Stage what a reversal returns to each (locked) pool."""
        rows = [
            (pools[payer].id, pools[payer].returned_fen + amount, pools[payer].balance_fen + amount)
            for payer, amount in sorted(returned.items())
        ]
        self.uow.stage(Write.updates(table_of(models.PrepaymentPool), ("returned_fen", "balance_fen"), rows))
