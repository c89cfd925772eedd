"""Read-only questions, each asked on behalf of a principal and filtered by what it may see
(api/services/access.py): settlements (one, by serial, or a filtered page), a person and their
accumulators, an institution and its prepayment pools, plans, the commercial catalogue.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Table, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adjudication import ErrorCode
from api.auth import Principal
from api.crypto.envelope import DecryptionError, Place
from api.crypto.tenants import insurer_tenant
from api.db import models
from api.db.unit_of_work import UnitOfWork, run
from api.errors import ServiceError
from api.services import access, audit, cursors
from api.services.runtime import Runtime
from api.services.settlement import reader
from api.settlement import Settlement

MAX_PAGE = 200
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SettlementFilter:
    institution: str | None = None
    payer: str | None = None
    service_from: date | None = None
    service_to: date | None = None
    drug: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[Settlement, ...]
    cursors: tuple[str, ...]
    has_next_page: bool


def encode_cursor(settlement_id: uuid.UUID) -> str:
    return cursors.encode("settlement", settlement_id)


async def settlement(runtime: Runtime, principal: Principal, settlement_id: uuid.UUID) -> Settlement | None:
    async def work(uow: UnitOfWork) -> Settlement | None:
        return (await uow.settlements.read([settlement_id], reader(principal))).get(settlement_id)

    return await run(runtime, work, read_only=True)


async def settlement_by_serial(
    runtime: Runtime, principal: Principal, institution: str, serial: str
) -> Settlement | None:
    table = models.Settlement.__table__

    async def work(uow: UnitOfWork) -> Settlement | None:
        found = (
            await uow.execute(
                select(table.c.id).where(
                    table.c.institution_code == institution, table.c.serial == serial, access.settlements(principal)
                )
            )
        ).scalar_one_or_none()
        return None if found is None else (await uow.settlements.read([found], reader(principal))).get(found)

    return await run(runtime, work, read_only=True)


async def settlements(
    runtime: Runtime,
    principal: Principal,
    where: SettlementFilter,
    first: int,
    after: str | None,
) -> Page:
    """Newest first, by keyset on the (time-ordered) id: pages stay stable while rows arrive."""
    if not 1 <= first <= MAX_PAGE:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"first must be between 1 and {MAX_PAGE}", "first")
    table = models.Settlement.__table__
    statement = select(table.c.id).where(access.settlements(principal)).order_by(table.c.id.desc()).limit(first + 1)
    if after is not None:
        statement = statement.where(table.c.id < cursors.decode("settlement", after))
    if where.institution:
        statement = statement.where(table.c.institution_code == where.institution)
    if where.status:
        statement = statement.where(table.c.status == where.status)
    if where.service_from:
        statement = statement.where(table.c.service_date >= where.service_from)
    if where.service_to:
        statement = statement.where(table.c.service_date <= where.service_to)
    if where.payer:
        payers = models.SettlementPayer.__table__
        statement = statement.where(
            exists().where(
                payers.c.settlement_id == table.c.id, payers.c.payer_code == where.payer, payers.c.amount_fen > 0
            )
        )
    if where.drug:
        lines = models.SettlementLine.__table__
        statement = statement.where(
            exists().where(lines.c.settlement_id == table.c.id, lines.c.drug_code == where.drug)
        )

    async def work(uow: UnitOfWork) -> tuple[list[uuid.UUID], dict[uuid.UUID, Settlement]]:
        ids = list((await uow.execute(statement)).scalars())
        return ids, await uow.settlements.read(ids[:first], reader(principal))

    ids, found = await run(runtime, work, read_only=True)
    has_next = len(ids) > first
    ids = ids[:first]
    return Page(tuple(found[i] for i in ids), tuple(encode_cursor(i) for i in ids), has_next)


async def _rows(
    sessions: async_sessionmaker[AsyncSession], table: Table, *where: ColumnElement[bool], order: Any = None
) -> list[Row]:
    statement = select(table).where(*where)
    if order is not None:
        statement = statement.order_by(order)
    async with sessions() as session:
        return [dict(row) for row in (await session.execute(statement)).mappings()]


async def person(sessions: async_sessionmaker[AsyncSession], principal: Principal, psn_no: str) -> Row | None:
    table = models.Person.__table__
    found = await _rows(sessions, table, table.c.psn_no == psn_no, access.people(principal))
    return found[0] if found else None


async def accumulators(sessions: async_sessionmaker[AsyncSession], person_id: uuid.UUID, year: int) -> list[Row]:
    """A person's accumulators: asked through a Person the caller could already see."""
    table = models.Accumulator.__table__
    return await _rows(sessions, table, table.c.person_id == person_id, table.c.year == year, order=table.c.plan_code)


async def units_received(sessions: async_sessionmaker[AsyncSession], person_id: uuid.UUID, year: int) -> list[Row]:
    table = models.UnitsReceived.__table__
    return await _rows(sessions, table, table.c.person_id == person_id, table.c.year == year, order=table.c.drug_code)


async def institution(sessions: async_sessionmaker[AsyncSession], principal: Principal, code: str) -> Row | None:
    table = models.Institution.__table__
    found = await _rows(sessions, table, table.c.code == code, access.institutions(principal))
    return found[0] if found else None


async def pools(sessions: async_sessionmaker[AsyncSession], principal: Principal, institution_code: str) -> list[Row]:
    table = models.PrepaymentPool.__table__
    return await _rows(
        sessions, table, table.c.institution_code == institution_code, access.pools(principal), order=table.c.payer_code
    )


async def plans(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, region: str | None, on: date | None
) -> list[Row]:
    """Plan versions the caller may see; with `on`, only the version of each plan in force then."""
    table = models.PlanVersion.__table__
    where = [access.plans(principal)]
    if region is not None:
        where.append(table.c.region == region)
    if on is not None:
        where.append(table.c.effective_from <= on)
    rows = await _rows(sessions, table, *where, order=table.c.effective_from.desc())
    if on is not None:
        latest: dict[str, Row] = {}
        for row in rows:
            latest.setdefault(row["plan_code"], row)
        rows = list(latest.values())
    return sorted(rows, key=lambda row: (row["region"], row["priority"], row["plan_code"], row["effective_from"]))


async def catalogue(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, region: str, on: date
) -> list[Row]:
    """The commercial catalogue of the formulary in force in `region` on `on`, as the caller may see it."""
    versions = models.FormularyVersion.__table__
    entries = models.CommercialEntry.__table__
    in_force = (
        select(versions.c.id)
        .where(versions.c.region == region, versions.c.effective_from <= on)
        .order_by(versions.c.effective_from.desc())
        .limit(1)
        .scalar_subquery()
    )
    return await _rows(
        sessions,
        entries,
        entries.c.formulary_version_id == in_force,
        access.catalogue(principal),
        order=entries.c.drug_code,
    )


async def person_by_id_number(runtime: Runtime, principal: Principal, id_number: str) -> Row | None:
    """Found through the keyed blind index of the ID number: the table is never decrypted."""
    table = models.Person.__table__
    index = runtime.cipher.blind_index("id_number", id_number.strip().upper())
    found = await _rows(runtime.sessions, table, table.c.id_number_index == index, access.people(principal))
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class LostRebate:
    """A rebate a statement cannot count: `not_computable` (the insurer's price was unreadable
    when the claim settled) or `unreadable` (computed, but its key has since been destroyed).
    """

    settlement_id: uuid.UUID
    line: int
    units: int
    reason: str


@dataclass(frozen=True, slots=True)
class StatementLine:
    insurer: str
    manufacturer: str
    drug: str
    period: str
    units: int
    """Units whose rebate is in `amount_fen`."""
    amount_fen: int
    lost: tuple[LostRebate, ...] = ()


@dataclass(slots=True)
class _Totals:
    units: int = 0
    amount_fen: int = 0
    lost: list[LostRebate] = field(default_factory=list)


async def rebate_statement(
    runtime: Runtime, principal: Principal, insurer: str | None, start: date, end: date
) -> list[StatementLine]:
    """What manufacturers owe, per insurer, drug and month of service, from the live settlements
    in [start, end]: the rebates the caller may see (access.rebates: an insurer its own, a price
    auditor those of its regions), of `insurer` only when given. Each rebate is decrypted; one
    that cannot be (not computable, or its key destroyed) is listed as lost, not counted. The
    read is audited.
    """
    settlements = models.Settlement.__table__
    rebates = models.SettlementRebate.__table__
    lines = models.SettlementLine.__table__
    drugs = models.Drug.__table__
    statement = (
        select(rebates, settlements.c.service_date, drugs.c.manufacturer, lines.c.quantity, lines.c.donated_units)
        .join(settlements, settlements.c.id == rebates.c.settlement_id)
        .join(lines, (lines.c.settlement_id == rebates.c.settlement_id) & (lines.c.line_index == rebates.c.line_index))
        .join(drugs, drugs.c.code == rebates.c.drug_code)
        .where(
            access.rebates(principal),
            settlements.c.status == "settled",
            settlements.c.service_date >= start,
            settlements.c.service_date <= end,
        )
        .order_by(rebates.c.settlement_id, rebates.c.line_index)
    )
    if insurer is not None:
        statement = statement.where(rebates.c.insurer_code == insurer)
    totals: dict[tuple[str, str, str, str], _Totals] = {}
    decrypted = 0
    async with runtime.sessions() as session:
        rows = (await session.execute(statement)).mappings().all()
        for row in rows:
            key = (row["insurer_code"], row["manufacturer"], row["drug_code"], row["service_date"].strftime("%Y-%m"))
            total = totals.setdefault(key, _Totals())
            units = row["quantity"] - row["donated_units"]
            lost = LostRebate(row["settlement_id"], row["line_index"], units, "not_computable")
            if row["status"] != "computed":
                total.lost.append(lost)
                continue
            place = Place("settlement_rebates", "amount_ct", row["id"], insurer_tenant(row["insurer_code"]))
            try:
                amount = await runtime.cipher.decrypt_amount(place, row["amount_ct"], session)
            except DecryptionError:
                total.lost.append(replace(lost, reason="unreadable"))
                continue
            decrypted += 1
            total.units += units
            total.amount_fen += amount
    await audit.append_alone(
        runtime.sessions,
        audit.AuditRecord(
            audit.Actor.of(principal),
            "decrypt settlement_rebates.amount_ct",
            "allowed",
            runtime.clock(),
            f"rebate statement:{insurer or 'all'}:{start}..{end}",
            {"rebates": decrypted, "lost": len(rows) - decrypted},
        ),
    )
    return [
        StatementLine(i, m, d, p, total.units, total.amount_fen, tuple(total.lost))
        for (i, m, d, p), total in sorted(totals.items())
    ]
