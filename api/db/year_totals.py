"""A person's year totals: their accumulators (deductible met, base spent, paid, claims) under
each plan, and the units of each drug they received, in one plan year. They make the second
claim of a year come out differently from the first, so a settlement locks them (lock 2 of the
unit of work's order: plan by plan, then drug by drug), reads them, and writes them back.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from sqlalchemy import select

from adjudication import Accumulator
from api.db import models
from api.db.base import table_of
from api.db.writes import Mode, Write
from api.ids import uuid7

if TYPE_CHECKING:
    from api.db.unit_of_work import UnitOfWork

_LOCK = """WITH plans AS (
  INSERT INTO accumulators AS a (id, person_id, year, plan_code, deductible_met_fen, base_spent_fen, paid_fen, claims)
  SELECT new.id, $1, $2, new.plan_code, 0, 0, 0, 0
  FROM unnest($3::uuid[], $4::text[]) AS new(id, plan_code) ORDER BY new.plan_code
  ON CONFLICT (person_id, year, plan_code) DO UPDATE SET claims = a.claims
  RETURNING a.id, a.plan_code, a.deductible_met_fen, a.base_spent_fen, a.paid_fen, a.claims
), drugs AS (
  INSERT INTO units_received AS u (id, person_id, year, drug_code, units)
  SELECT new.id, $1, $2, new.drug_code, 0
  FROM unnest($5::uuid[], $6::text[]) AS new(id, drug_code) ORDER BY new.drug_code
  ON CONFLICT (person_id, year, drug_code) DO UPDATE SET units = u.units
  RETURNING u.id, u.drug_code, u.units
)
SELECT true, id, plan_code, deductible_met_fen, base_spent_fen, paid_fen, claims FROM plans
UNION ALL
SELECT false, id, drug_code, units, 0, 0, 0 FROM drugs"""
"""Missing rows created and every row locked in one statement: an upsert that changes nothing
takes the row's lock and returns its latest values (a concurrent claim's committed totals
included), plans first, then drugs, each in code order."""


@dataclass(frozen=True, slots=True)
class PersonYear:
    """A person's totals in one plan year, as read (and, for a settlement, locked)."""

    person_id: uuid.UUID
    year: int
    accumulators: Mapping[str, Accumulator]
    """By plan code; a plan without a row yet reads as zero."""
    units: Mapping[str, int]
    """Units received, by drug code."""
    row_ids: Mapping[tuple[str, str], uuid.UUID]
    """The rows read: ("plan", code) and ("drug", code)."""

    def accumulator(self, plan: str) -> Accumulator:
        return self.accumulators.get(plan, Accumulator())


class YearTotals:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def lock(self, person_id: uuid.UUID, year: int, plans: Sequence[str], drugs: Sequence[str]) -> PersonYear:
        """The person's totals of `plans` and `drugs`, rows created when missing, all locked."""
        plans, drugs = sorted(set(plans)), sorted(set(drugs))
        if self.uow.postgresql:
            rows = await self.uow.fetch(
                _LOCK, person_id, year, [uuid7() for _ in plans], plans, [uuid7() for _ in drugs], drugs
            )
            return _person_year(person_id, year, rows)
        base = {"person_id": person_id, "year": year}
        self.uow.stage(  # SQLite: created before the read below; the database's lock is held already
            Write.of(
                table_of(models.Accumulator),
                [base | {"id": uuid7(), "plan_code": plan} for plan in plans],
                Mode.INSERT_MISSING,
                ("person_id", "year", "plan_code"),
            ),
            Write.of(
                table_of(models.UnitsReceived),
                [base | {"id": uuid7(), "drug_code": drug} for drug in drugs],
                Mode.INSERT_MISSING,
                ("person_id", "year", "drug_code"),
            ),
        )
        return await self.read(person_id, year, plans, drugs)

    async def read(self, person_id: uuid.UUID, year: int, plans: Collection[str], drugs: Collection[str]) -> PersonYear:
        """The same, without creating or locking anything (a pre-settlement's view)."""
        accumulators, units = table_of(models.Accumulator), table_of(models.UnitsReceived)
        rows: list[tuple[object, ...]] = []
        if plans:
            found = await self.uow.execute(
                select(
                    accumulators.c.id,
                    accumulators.c.plan_code,
                    accumulators.c.deductible_met_fen,
                    accumulators.c.base_spent_fen,
                    accumulators.c.paid_fen,
                    accumulators.c.claims,
                ).where(
                    accumulators.c.person_id == person_id,
                    accumulators.c.year == year,
                    accumulators.c.plan_code.in_(sorted(plans)),
                )
            )
            rows += [(True, *row) for row in found]
        if drugs:
            found = await self.uow.execute(
                select(units.c.id, units.c.drug_code, units.c.units).where(
                    units.c.person_id == person_id, units.c.year == year, units.c.drug_code.in_(sorted(drugs))
                )
            )
            rows += [(False, *row, 0, 0, 0) for row in found]
        return _person_year(person_id, year, rows)

    def add(self, year: PersonYear, after: Mapping[str, Accumulator], units: Mapping[str, int]) -> None:
        """Stage a settlement's totals: the accumulators `after` it (of the plans it changed),
        and the units it dispensed added to each drug's.
        """
        self._write(year, after, {drug: year.units.get(drug, 0) + n for drug, n in units.items()})

    def subtract(self, year: PersonYear, changes: Mapping[str, Accumulator], units: Mapping[str, int]) -> None:
        """Stage a reversal's: exactly what the settlement added, taken away."""
        self._write(
            year,
            {plan: year.accumulator(plan) - change for plan, change in changes.items()},
            {drug: year.units.get(drug, 0) - n for drug, n in units.items()},
        )

    def _write(self, year: PersonYear, accumulators: Mapping[str, Accumulator], units: Mapping[str, int]) -> None:
        self.uow.stage(
            Write.updates(
                table_of(models.Accumulator),
                ("deductible_met_fen", "base_spent_fen", "paid_fen", "claims"),
                [
                    (year.row_ids["plan", plan], a.deductible_met, a.base_spent, a.paid, a.claims)
                    for plan, a in sorted(accumulators.items())
                ],
            ),
            Write.updates(
                table_of(models.UnitsReceived),
                ("units",),
                [(year.row_ids["drug", drug], n) for drug, n in sorted(units.items())],
            ),
        )


def _person_year(person_id: uuid.UUID, year: int, rows: Sequence[Sequence[object]]) -> PersonYear:
    accumulators: dict[str, Accumulator] = {}
    units: dict[str, int] = {}
    ids: dict[tuple[str, str], uuid.UUID] = {}
    for is_plan, row_id, code, first, base_spent, paid, claims in rows:
        assert isinstance(row_id, uuid.UUID) and isinstance(code, str) and isinstance(first, int)
        if is_plan:
            assert isinstance(base_spent, int) and isinstance(paid, int) and isinstance(claims, int)
            accumulators[code] = Accumulator(first, base_spent, paid, claims)
            ids["plan", code] = row_id
        else:
            units[code] = first
            ids["drug", code] = row_id
    return PersonYear(person_id, year, MappingProxyType(accumulators), MappingProxyType(units), MappingProxyType(ids))
