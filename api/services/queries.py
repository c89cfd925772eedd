"""Read-only questions, each asked on behalf of a principal and filtered by what it may see
(api/services/access.py): settlements (one, by serial, or a filtered page), a person and their
accumulators, an institution and its prepayment pools, plans, the commercial catalogue.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Table, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adjudication import ErrorCode
from api.auth import Principal
from api.db import models
from api.errors import ServiceError
from api.services import access
from api.services.records import SettlementView, read_settlements

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
    items: tuple[SettlementView, ...]
    cursors: tuple[str, ...]
    has_next_page: bool


def encode_cursor(settlement_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(b"settlement:" + settlement_id.bytes).decode()


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode())
        if not raw.startswith(b"settlement:"):
            raise ValueError
        return uuid.UUID(bytes=raw.removeprefix(b"settlement:"))
    except ValueError:
        raise ServiceError(ErrorCode.INVALID_FIELD, "not a cursor this service gave out", "after") from None


async def settlement(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, settlement_id: uuid.UUID
) -> SettlementView | None:
    async with sessions() as session:
        return (await read_settlements(session, principal, [settlement_id])).get(settlement_id)


async def settlement_by_serial(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, institution: str, serial: str
) -> SettlementView | None:
    table = models.Settlement.__table__
    async with sessions() as session:
        found = (
            await session.execute(
                select(table.c.id).where(
                    table.c.institution_code == institution, table.c.serial == serial, access.settlements(principal)
                )
            )
        ).scalar_one_or_none()
        if found is None:
            return None
        return (await read_settlements(session, principal, [found])).get(found)


async def settlements(
    sessions: async_sessionmaker[AsyncSession],
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
        statement = statement.where(table.c.id < decode_cursor(after))
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
    async with sessions() as session:
        ids = list((await session.execute(statement)).scalars())
        has_next = len(ids) > first
        ids = ids[:first]
        found = await read_settlements(session, principal, ids)
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
