"""Read-only questions: settlements (one, by serial, or a filtered page), a person's
accumulators, an institution's prepayment pools.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adjudication import ErrorCode
from api.db import models
from api.errors import ServiceError
from api.services.records import SettlementView, read_settlements

MAX_PAGE = 200


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


async def settlement(sessions: async_sessionmaker[AsyncSession], settlement_id: uuid.UUID) -> SettlementView | None:
    async with sessions() as session:
        return (await read_settlements(session, [settlement_id])).get(settlement_id)


async def settlement_by_serial(
    sessions: async_sessionmaker[AsyncSession], institution: str, serial: str
) -> SettlementView | None:
    table = models.Settlement.__table__
    async with sessions() as session:
        found = (
            await session.execute(
                select(table.c.id).where(table.c.institution_code == institution, table.c.serial == serial)
            )
        ).scalar_one_or_none()
        if found is None:
            return None
        return (await read_settlements(session, [found])).get(found)


async def settlements(
    sessions: async_sessionmaker[AsyncSession], where: SettlementFilter, first: int, after: str | None
) -> Page:
    """Newest first, by keyset on the (time-ordered) id: pages stay stable while rows arrive."""
    if not 1 <= first <= MAX_PAGE:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"first must be between 1 and {MAX_PAGE}", "first")
    table = models.Settlement.__table__
    statement = select(table.c.id).order_by(table.c.id.desc()).limit(first + 1)
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
        found = await read_settlements(session, ids)
    return Page(tuple(found[i] for i in ids), tuple(encode_cursor(i) for i in ids), has_next)


@dataclass(frozen=True, slots=True)
class PersonView:
    psn_no: str
    insurance_type: str
    region: str
    memberships: tuple[str, ...]
    flags: tuple[str, ...]
    id: uuid.UUID


async def person(sessions: async_sessionmaker[AsyncSession], psn_no: str) -> PersonView | None:
    table = models.Person.__table__
    async with sessions() as session:
        row = (await session.execute(select(table).where(table.c.psn_no == psn_no))).mappings().first()
    if row is None:
        return None
    return PersonView(
        row["psn_no"], row["insurance_type"], row["region"], tuple(row["memberships"]), tuple(row["flags"]), row["id"]
    )


async def accumulators(
    sessions: async_sessionmaker[AsyncSession], person_id: uuid.UUID, year: int
) -> Sequence[dict[str, Any]]:
    table = models.Accumulator.__table__
    async with sessions() as session:
        rows = await session.execute(
            select(table).where(table.c.person_id == person_id, table.c.year == year).order_by(table.c.plan_code)
        )
        return [dict(row) for row in rows.mappings()]


async def units_received(
    sessions: async_sessionmaker[AsyncSession], person_id: uuid.UUID, year: int
) -> Sequence[dict[str, Any]]:
    table = models.UnitsReceived.__table__
    async with sessions() as session:
        rows = await session.execute(
            select(table).where(table.c.person_id == person_id, table.c.year == year).order_by(table.c.drug_code)
        )
        return [dict(row) for row in rows.mappings()]


async def institution(sessions: async_sessionmaker[AsyncSession], code: str) -> dict[str, Any] | None:
    table = models.Institution.__table__
    async with sessions() as session:
        row = (await session.execute(select(table).where(table.c.code == code))).mappings().first()
    return None if row is None else dict(row)


async def pools(sessions: async_sessionmaker[AsyncSession], institution_code: str) -> Sequence[dict[str, Any]]:
    table = models.PrepaymentPool.__table__
    async with sessions() as session:
        rows = await session.execute(
            select(table).where(table.c.institution_code == institution_code).order_by(table.c.payer_code)
        )
        return [dict(row) for row in rows.mappings()]
