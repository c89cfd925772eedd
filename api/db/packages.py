"""Traceability packages (one per 20-digit code) and the events of their codes: sold, returned.

A package's row counts the units sold from it (net of returns); it is what concurrent sales of
one code queue on, so a settlement locks its codes' packages (lock 3 of the unit of work's order,
code by code) before taking units from them. Events are append-only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from adjudication.tracecodes import CodeEvent
from api.db import models
from api.db.base import table_of
from api.db.writes import Mode, Write
from api.ids import uuid7

if TYPE_CHECKING:
    from api.db.unit_of_work import UnitOfWork

_COLUMNS = ("id", "code", "drug_code", "package_units", "units_sold", "last_event_at")
_LOCK = """INSERT INTO trace_packages AS p (id, code, drug_code, package_units, units_sold, last_event_at)
SELECT new.id, new.code, new.drug_code, new.package_units, 0, NULL
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int4[]) AS new(id, code, drug_code, package_units)
ORDER BY new.code
ON CONFLICT (code) DO UPDATE SET units_sold = p.units_sold
RETURNING p.id, p.code, p.drug_code, p.package_units, p.units_sold, p.last_event_at"""
"""Missing packages created and every package locked, in code order, in one statement (an
upsert that changes nothing takes the row's lock and returns its latest values)."""
_HISTORY = """SELECT e.id, e.code, e.drug_code, e.kind, e.units, e.occurred_at, s.service_date, e.institution_code
FROM trace_events e JOIN settlements s ON s.id = e.settlement_id WHERE e.code = ANY($1::text[])"""


@dataclass(frozen=True, slots=True)
class Package:
    """A package as known by its code. `id` is None for one never seen (a pre-settlement's
    view: it creates nothing).
    """

    id: uuid.UUID | None
    code: str
    drug: str
    package_units: int
    units_sold: int
    last_event_at: datetime | None

    @property
    def remaining(self) -> int:
        return self.package_units - self.units_sold


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One use of a code: `units` sold (or returned) on a settlement's line, for a patient known
    by the keyed blind index of their ID number.
    """

    code: str
    drug: str
    kind: str
    institution: str
    region: str
    settlement_id: uuid.UUID
    line_index: int
    units: int
    patient_index: str
    occurred_at: datetime
    id: uuid.UUID

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "drug_code": self.drug,
            "kind": self.kind,
            "institution_code": self.institution,
            "region": self.region,
            "settlement_id": self.settlement_id,
            "line_index": self.line_index,
            "units": self.units,
            "patient_index": self.patient_index,
            "occurred_at": self.occurred_at,
        }


class Packages:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def lock(self, wanted: Mapping[str, tuple[str, int]]) -> dict[str, Package]:
        """The packages of `wanted` (code -> (drug, package units)), created when missing and
        locked in code order.
        """
        codes = sorted(wanted)
        if not codes:
            return {}
        if self.uow.postgresql:
            rows = await self.uow.fetch(
                _LOCK,
                [uuid7() for _ in codes],
                codes,
                [wanted[code][0] for code in codes],
                [wanted[code][1] for code in codes],
            )
            return {row[1]: Package(*row) for row in rows}
        missing = [
            {"id": uuid7(), "code": c, "drug_code": wanted[c][0], "package_units": wanted[c][1], "units_sold": 0}
            for c in codes
        ]
        self.uow.stage(Write.of(table_of(models.TracePackage), missing, Mode.INSERT_MISSING, ("code",)))
        return await self.read(wanted)

    async def read(self, wanted: Mapping[str, tuple[str, int]]) -> dict[str, Package]:
        """The same without creating or locking anything; a package never seen reads unsold."""
        if not wanted:
            return {}
        table = table_of(models.TracePackage)
        rows = await self.uow.rows(select(*(table.c[c] for c in _COLUMNS)).where(table.c.code.in_(sorted(wanted))))
        found = {row[1]: Package(*row) for row in rows}
        return {
            code: found.get(code) or Package(None, code, drug, units, 0, None) for code, (drug, units) in wanted.items()
        }

    async def history(self, codes: Sequence[str]) -> list[CodeEvent]:
        """Every event of `codes`, with its settlement's service date, as the detector reads them."""
        if not codes:
            return []
        if self.uow.postgresql:
            rows = await self.uow.fetch(_HISTORY, sorted(codes))
        else:
            events, settlements = table_of(models.TraceEvent), table_of(models.Settlement)
            statement = (
                select(
                    events.c.id,
                    events.c.code,
                    events.c.drug_code,
                    events.c.kind,
                    events.c.units,
                    events.c.occurred_at,
                    settlements.c.service_date,
                    events.c.institution_code,
                )
                .join(settlements, settlements.c.id == events.c.settlement_id)
                .where(events.c.code.in_(sorted(codes)))
            )
            rows = [tuple(row) for row in await self.uow.execute(statement)]
        return [CodeEvent(str(row[0]), *row[1:]) for row in rows]

    async def last_sale(self, code: str) -> tuple[str, datetime] | None:
        """Where and when `code` was last sold: (institution, moment)."""
        events = table_of(models.TraceEvent)
        statement = (
            select(events.c.institution_code, events.c.occurred_at)
            .where(events.c.code == code, events.c.kind == "sold")
            .order_by(events.c.occurred_at.desc())
            .limit(1)
        )
        found = await self.uow.rows(statement)
        return (found[0][0], found[0][1]) if found else None

    def sell(self, packages: Sequence[Package], events: Sequence[TraceEvent], at: datetime) -> None:
        """Stage a sale: the (locked) packages with their units sold now, and its events."""
        self.uow.stage(
            Write.updates(
                table_of(models.TracePackage),
                ("units_sold", "last_event_at"),
                [(package.id, package.units_sold, at) for package in packages],
            ),
            Write.of(table_of(models.TraceEvent), [event.row() for event in events]),
        )

    async def give_back(self, settlement_id: uuid.UUID, at: datetime) -> None:
        """A reversal frees the units its settlement took: its packages locked in code order,
        their units returned, and a `returned` event for each sale.
        """
        events, packages = table_of(models.TraceEvent), table_of(models.TracePackage)
        sold = (
            (
                await self.uow.execute(
                    select(events).where(events.c.settlement_id == settlement_id, events.c.kind == "sold")
                )
            )
            .mappings()
            .all()
        )
        if not sold:
            return
        codes = sorted({row["code"] for row in sold})
        statement = select(packages.c.id, packages.c.code, packages.c.units_sold).where(packages.c.code.in_(codes))
        locked = {
            code: (package_id, units)
            for package_id, code, units in await self.uow.rows(statement.order_by(packages.c.code).with_for_update())
        }
        returned = dict.fromkeys(codes, 0)
        for row in sold:
            returned[row["code"]] += row["units"]
        updated = [(locked[code][0], locked[code][1] - units, at) for code, units in returned.items()]
        self.uow.stage(
            Write.updates(packages, ("units_sold", "last_event_at"), updated),
            Write.of(events, [dict(row) | {"id": uuid7(), "kind": "returned", "occurred_at": at} for row in sold]),
        )


def taken(package: Package, units: int) -> Package:
    """`package` after `units` more are sold from it."""
    return replace(package, units_sold=package.units_sold + units)
