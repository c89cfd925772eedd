"""Read-only questions, each asked on behalf of a principal and filtered by what it may see
(api/services/access.py): settlements (one, by serial, or a filtered page), a person and their
accumulators, an institution and its prepayment pools, plans, the commercial catalogue.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adjudication import ErrorCode
from api.auth import Principal
from api.crypto.envelope import DecryptionError, Place
from api.crypto.tenants import insurer_tenant
from api.db import models
from api.db.base import Base
from api.db.unit_of_work import UnitOfWork, run
from api.errors import ServiceError
from api.services import access, audit, cursors
from api.services.runtime import Runtime
from api.services.settlement import reader
from api.settlement import Settlement

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class SettlementFilter:
    """`region` is the treating institution's region (就医地), `insured_region` the patient's
    (参保地); `cross_region` keeps the settlements treated outside the insuring region (异地就医,
    True) or within it (False).
    """

    institution: str | None = None
    payer: str | None = None
    service_from: date | None = None
    service_to: date | None = None
    drug: str | None = None
    status: str | None = None
    region: str | None = None
    insured_region: str | None = None
    cross_region: bool | None = None


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
    if where.region:
        statement = statement.where(table.c.region == where.region)
    if where.insured_region:
        statement = statement.where(table.c.insured_region == where.insured_region)
    if where.cross_region is not None:
        crossed = table.c.region != table.c.insured_region
        statement = statement.where(crossed if where.cross_region else ~crossed)
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


Model = TypeVar("Model", bound=Base)


async def _all(
    sessions: async_sessionmaker[AsyncSession],
    model: type[Model],
    *where: ColumnElement[bool],
    order: ColumnElement[Any] | None = None,
) -> list[Model]:
    statement = select(model).where(*where)
    if order is not None:
        statement = statement.order_by(order)
    async with sessions() as session:
        return list((await session.execute(statement)).scalars())


@dataclass(frozen=True, slots=True)
class PersonView:
    """An insured person. The ID number and the name stay sealed: they are decrypted (and the
    reading audited) only for a caller whose field permission admits it.
    """

    id: uuid.UUID
    psn_no: str
    insurance_type: str
    region: str
    memberships: tuple[str, ...]
    flags: tuple[str, ...]
    id_number_ct: bytes
    name_ct: bytes


def _person(person: models.Person) -> PersonView:
    return PersonView(
        id=person.id,
        psn_no=person.psn_no,
        insurance_type=person.insurance_type,
        region=person.region,
        memberships=tuple(person.memberships),
        flags=tuple(person.flags),
        id_number_ct=person.id_number_ct,
        name_ct=person.name_ct,
    )


async def person(sessions: async_sessionmaker[AsyncSession], principal: Principal, psn_no: str) -> PersonView | None:
    table = models.Person.__table__
    found = await _all(sessions, models.Person, table.c.psn_no == psn_no, access.people(principal))
    return _person(found[0]) if found else None


async def person_by_id_number(runtime: Runtime, principal: Principal, id_number: str) -> PersonView | None:
    """Found through the keyed blind index of the ID number: the table is never decrypted."""
    table = models.Person.__table__
    index = runtime.cipher.blind_index("id_number", id_number.strip().upper())
    found = await _all(runtime.sessions, models.Person, table.c.id_number_index == index, access.people(principal))
    return _person(found[0]) if found else None


@dataclass(frozen=True, slots=True)
class AccumulatorView:
    """One person's totals under one plan in one year."""

    plan: str
    year: int
    deductible_met_fen: int
    base_spent_fen: int
    paid_fen: int
    claims: int


async def accumulators(
    sessions: async_sessionmaker[AsyncSession], person_id: uuid.UUID, year: int
) -> list[AccumulatorView]:
    """A person's accumulators: asked through a Person the caller could already see."""
    table = models.Accumulator.__table__
    found = await _all(
        sessions, models.Accumulator, table.c.person_id == person_id, table.c.year == year, order=table.c.plan_code
    )
    return [
        AccumulatorView(
            plan=row.plan_code,
            year=row.year,
            deductible_met_fen=row.deductible_met_fen,
            base_spent_fen=row.base_spent_fen,
            paid_fen=row.paid_fen,
            claims=row.claims,
        )
        for row in found
    ]


@dataclass(frozen=True, slots=True)
class UnitsReceivedView:
    drug: str
    year: int
    units: int


async def units_received(
    sessions: async_sessionmaker[AsyncSession], person_id: uuid.UUID, year: int
) -> list[UnitsReceivedView]:
    table = models.UnitsReceived.__table__
    found = await _all(
        sessions, models.UnitsReceived, table.c.person_id == person_id, table.c.year == year, order=table.c.drug_code
    )
    return [UnitsReceivedView(drug=row.drug_code, year=row.year, units=row.units) for row in found]


@dataclass(frozen=True, slots=True)
class InstitutionView:
    code: str
    name: str
    kind: str
    level: int
    region: str


async def institution(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, code: str
) -> InstitutionView | None:
    table = models.Institution.__table__
    found = await _all(sessions, models.Institution, table.c.code == code, access.institutions(principal))
    if not found:
        return None
    row = found[0]
    return InstitutionView(code=row.code, name=row.name, kind=row.kind, level=row.level, region=row.region)


@dataclass(frozen=True, slots=True)
class PoolView:
    """A payer's prepayment pool at an institution."""

    payer: str
    institution: str
    granted_fen: int
    drawn_fen: int
    returned_fen: int
    balance_fen: int


async def pools(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, institution_code: str
) -> list[PoolView]:
    table = models.PrepaymentPool.__table__
    found = await _all(
        sessions,
        models.PrepaymentPool,
        table.c.institution_code == institution_code,
        access.pools(principal),
        order=table.c.payer_code,
    )
    return [
        PoolView(
            payer=row.payer_code,
            institution=row.institution_code,
            granted_fen=row.granted_fen,
            drawn_fen=row.drawn_fen,
            returned_fen=row.returned_fen,
            balance_fen=row.balance_fen,
        )
        for row in found
    ]


@dataclass(frozen=True, slots=True)
class PlanVersionView:
    """One version of a payer's plan; `definition` is the plan object of SCENARIO.md, as loaded."""

    plan: str
    payer: str
    kind: str
    region: str
    priority: int
    effective_from: date
    definition: Mapping[str, object]


async def plans(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, region: str | None, on: date | None
) -> list[PlanVersionView]:
    """Plan versions the caller may see; with `on`, only the version of each plan in force then."""
    table = models.PlanVersion.__table__
    where = [access.plans(principal)]
    if region is not None:
        where.append(table.c.region == region)
    if on is not None:
        where.append(table.c.effective_from <= on)
    found = await _all(sessions, models.PlanVersion, *where, order=table.c.effective_from.desc())
    versions = [
        PlanVersionView(
            plan=row.plan_code,
            payer=row.payer_code,
            kind=row.kind,
            region=row.region,
            priority=row.priority,
            effective_from=row.effective_from,
            definition=row.definition,
        )
        for row in found
    ]
    if on is not None:
        latest: dict[str, PlanVersionView] = {}
        for version in versions:
            latest.setdefault(version.plan, version)
        versions = list(latest.values())
    return sorted(versions, key=lambda v: (v.region, v.priority, v.plan, v.effective_from))


@dataclass(frozen=True, slots=True)
class CatalogueEntryView:
    """A drug of the commercial catalogue under one insurer; its settlement price still sealed."""

    id: uuid.UUID
    drug: str
    insurer: str
    settlement_price_ct: bytes


async def catalogue(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, region: str, on: date
) -> list[CatalogueEntryView]:
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
    found = await _all(
        sessions,
        models.CommercialEntry,
        entries.c.formulary_version_id == in_force,
        access.catalogue(principal),
        order=entries.c.drug_code,
    )
    return [
        CatalogueEntryView(
            id=row.id, drug=row.drug_code, insurer=row.insurer_code, settlement_price_ct=row.settlement_price_ct
        )
        for row in found
    ]


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
