"""Prepayment pools (预付金): what each payer has advanced to an institution, drawn down by the
claims settled there. Locked last of all (the unit of work's lock order) and written with the
commit: a pool is shared by every claim at its institution.
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
