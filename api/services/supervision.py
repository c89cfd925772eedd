"""The fund supervisors' side of traceability: anomaly scans, anomalies by page and filter, a
code's history, an institution's risk summary, handling anomalies, and e-prescriptions (which
the prescribing hospital records and dual-channel pharmacy sales are matched to).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication import ErrorCode
from adjudication.tracecodes import FINDING_KIND, AnomalyKind, Problem, check_line, detect
from api.auth import INSTITUTION_ROLES, Principal, Role
from api.db import models
from api.db.anomalies import Anomaly
from api.errors import ServiceError
from api.ids import uuid7
from api.services import access, audit, cursors, tracing
from api.services.requests import fits
from api.services.runtime import SERVICE_ZONE, Runtime

Row = dict[str, Any]
PAGE = 500
"""Rows per page: of a query's answer, and of an export read from the database at a time."""
ANOMALY_STATUSES = ("open", "explained", "confirmed")


async def scan(runtime: Runtime) -> int:
    """Detect anomalies in everything recorded; returns how many are new. The writer's rules and
    fingerprints: what was flagged when written is not flagged again.
    """
    now = runtime.clock()
    found: list[Anomaly] = []
    async with runtime.sessions() as session:
        found.extend(await _event_anomalies(session, now, runtime.reversal_window))
        found.extend(await _line_anomalies(session, now))
        before = (await session.execute(select(func.count()).select_from(models.Anomaly))).scalar_one()
        await tracing.record_anomalies(session, found)
        after = (await session.execute(select(func.count()).select_from(models.Anomaly))).scalar_one()
        await session.commit()
    return int(after - before)


async def _event_anomalies(session: AsyncSession, now: datetime, reversal_window: timedelta) -> list[Anomaly]:
    where = {str(row["id"]): row for row in await tracing.event_rows(session)}
    history = [tracing.code_event(row) for row in where.values()]
    facts = await tracing.drug_facts(session, [event.drug for event in history])
    return [
        tracing.anomaly(
            detection.kind,
            detection.fingerprint,
            institution=where[detection.event_id]["institution_code"],
            region=where[detection.event_id]["region"],
            settlement_id=where[detection.event_id]["settlement_id"],
            drug=where[detection.event_id]["drug_code"],
            code=detection.code,
            at=now,
            detected_by="scan",
            message=detection.message,
        )
        for detection in detect(history, facts, reversal_window)
    ]


async def _line_anomalies(session: AsyncSession, now: datetime) -> list[Anomaly]:
    """What the lines of live settlements show: codes malformed or miscounted, no codes, and
    dual-channel pharmacy sales without a matching e-prescription.
    """
    lines = models.SettlementLine.__table__
    settlements = models.Settlement.__table__
    prescriptions = models.Prescription.__table__
    rows = (
        (
            await session.execute(
                select(
                    lines,
                    settlements.c.institution_code,
                    settlements.c.region,
                    settlements.c.visit,
                    settlements.c.person_id,
                )
                .join(settlements, settlements.c.id == lines.c.settlement_id)
                .where(settlements.c.status == "settled")
            )
        )
        .mappings()
        .all()
    )
    facts = await tracing.drug_facts(session, [row["drug_code"] for row in rows])
    issued = {row["prescription_id"]: row for row in (await session.execute(select(prescriptions))).mappings()}
    found: list[Anomaly] = []
    for row in rows:
        place = {
            "institution": row["institution_code"],
            "region": row["region"],
            "settlement_id": row["settlement_id"],
            "drug": row["drug_code"],
            "at": now,
            "detected_by": "scan",
        }
        drug = facts.get(row["drug_code"])
        if drug is not None:
            for finding in check_line(
                row["trace_codes"],
                row["quantity"],
                split=row["split"],
                package_units=drug.package_units,
                prefixes=drug.prefixes,
            ):
                if finding.problem is Problem.PRODUCT_MISMATCH:
                    continue  # judged on the code's events, like the writer does
                kind = FINDING_KIND[finding.problem]
                fingerprint = tracing.line_fingerprint(
                    kind, row["settlement_id"], row["line_index"], finding.code or ""
                )
                found.append(tracing.anomaly(kind, fingerprint, message=finding.message, code=finding.code, **place))
        if row["visit"] == "pharmacy" and not tracing.prescribed(
            issued.get(row["prescription_id"] or ""), row["person_id"], row["drug_code"]
        ):
            kind = AnomalyKind.NO_PRESCRIPTION
            found.append(
                tracing.anomaly(
                    kind,
                    tracing.line_fingerprint(kind, row["settlement_id"], row["line_index"]),
                    message="no matching e-prescription for this patient and drug",
                    code=None,
                    **place,
                )
            )
    return found


# --- anomalies, as supervisors and institutions see them ---------------------------------------


@dataclass(frozen=True, slots=True)
class AnomalyFilter:
    region: str | None = None
    institution: str | None = None
    drug: str | None = None
    kind: str | None = None
    status: str | None = None
    detected_from: date | None = None
    detected_to: date | None = None


def _day_start(day: date) -> datetime | None:
    """The moment `day` begins in Asia/Shanghai (the zone every date of the service is in), or
    None for a day whose start is before the first moment a date bound can name (0001-01-01).
    """
    try:
        return datetime.combine(day, time.min, tzinfo=SERVICE_ZONE).astimezone(UTC)
    except OverflowError:
        return None


def _anomaly_where(principal: Principal, where: AnomalyFilter) -> list[ColumnElement[bool]]:
    """The caller's anomalies that match the filter; its dates are whole days in Asia/Shanghai
    (a bound at the calendar's edge bounds nothing).
    """
    table = models.Anomaly.__table__
    clauses = [access.anomalies(principal)]
    for column, value in (
        (table.c.region, where.region),
        (table.c.institution_code, where.institution),
        (table.c.drug_code, where.drug),
        (table.c.kind, where.kind),
        (table.c.status, where.status),
    ):
        if value is not None:
            clauses.append(column == value)
    start = None if where.detected_from is None else _day_start(where.detected_from)
    last_day = where.detected_to
    end = None if last_day is None or last_day == date.max else _day_start(last_day + timedelta(days=1))
    if start is not None:
        clauses.append(table.c.detected_at >= start)
    if end is not None:
        clauses.append(table.c.detected_at < end)
    return clauses


def cursor_of(anomaly_id: uuid.UUID) -> str:
    return cursors.encode("anomaly", anomaly_id)


async def anomalies(
    runtime: Runtime, principal: Principal, where: AnomalyFilter, first: int, after: str | None
) -> tuple[list[Row], bool]:
    """Newest first, by keyset on the (time-ordered) id."""
    if not 1 <= first <= PAGE:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"first must be between 1 and {PAGE}", "first")
    table = models.Anomaly.__table__
    statement = select(table).where(*_anomaly_where(principal, where)).order_by(table.c.id.desc()).limit(first + 1)
    if after is not None:
        statement = statement.where(table.c.id < cursors.decode("anomaly", after))
    async with runtime.sessions() as session:
        rows = [dict(row) for row in (await session.execute(statement)).mappings()]
    return rows[:first], len(rows) > first


async def stream_anomalies(runtime: Runtime, principal: Principal, where: AnomalyFilter) -> AsyncIterator[Row]:
    """Every matching anomaly, a page at a time: an export never holds them all in memory."""
    after: str | None = None
    while True:
        page, more = await anomalies(runtime, principal, where, PAGE, after)
        for row in page:
            yield row
        if not more:
            return
        after = cursor_of(page[-1]["id"])


async def stream_code_history(runtime: Runtime, principal: Principal, code: str) -> AsyncIterator[Row]:
    """Every event of one traceability code that the caller may see, in time order, read a page
    at a time by keyset on (occurred_at, id): an export never holds them all in memory.
    """
    events = models.TraceEvent.__table__
    statement = (
        select(events)
        .where(events.c.code == code, access.trace_events(principal))
        .order_by(events.c.occurred_at, events.c.id)
        .limit(PAGE)
    )
    page_statement = statement
    while True:
        async with runtime.sessions() as session:
            page = [dict(row) for row in (await session.execute(page_statement)).mappings()]
        for row in page:
            yield row
        if len(page) < PAGE:
            return
        at, last = page[-1]["occurred_at"], page[-1]["id"]
        page_statement = statement.where(
            (events.c.occurred_at > at) | ((events.c.occurred_at == at) & (events.c.id > last))
        )


async def code_history(runtime: Runtime, principal: Principal, code: str) -> list[Row]:
    """Every event of one traceability code that the caller may see, in time order."""
    return [row async for row in stream_code_history(runtime, principal, code)]


@dataclass(frozen=True, slots=True)
class RiskSummary:
    institution: str
    settlements: int
    anomalies: int
    open_anomalies: int
    by_kind: dict[str, int]
    by_severity: dict[str, int]

    @property
    def anomalies_per_hundred_settlements(self) -> float:
        return round(100 * self.anomalies / self.settlements, 2) if self.settlements else 0.0


async def risk_summary(
    runtime: Runtime, principal: Principal, institution: str, start: date | None, end: date | None
) -> RiskSummary | None:
    """Settlements (by service date) and anomalies (by the day detected) of a visible institution
    between two dates, each bound optional; None when the caller may not see the institution.
    The anomalies are counted by the database: a summary is a handful of rows, however many
    anomalies it counts.
    """
    institutions = models.Institution.__table__
    settlements = models.Settlement.__table__
    table = models.Anomaly.__table__
    settled = [settlements.c.institution_code == institution]
    if start is not None:
        settled.append(settlements.c.service_date >= start)
    if end is not None:
        settled.append(settlements.c.service_date <= end)
    async with runtime.sessions() as session:
        visible = (
            await session.execute(
                select(institutions.c.code).where(institutions.c.code == institution, access.institutions(principal))
            )
        ).first()
        if visible is None:
            return None
        count = (await session.execute(select(func.count()).select_from(settlements).where(*settled))).scalar_one()
        where = _anomaly_where(principal, AnomalyFilter(institution=institution, detected_from=start, detected_to=end))
        groups = (
            await session.execute(
                select(table.c.kind, table.c.severity, table.c.status, func.count())
                .where(*where)
                .group_by(table.c.kind, table.c.severity, table.c.status)
            )
        ).all()
    by_kind: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for kind, severity, _, n in groups:
        by_kind[kind] = by_kind.get(kind, 0) + n
        by_severity[severity] = by_severity.get(severity, 0) + n
    total = sum(n for *_, n in groups)
    still_open = sum(n for _, _, status, n in groups if status == "open")
    return RiskSummary(institution, int(count), total, still_open, by_kind, by_severity)


async def handle(runtime: Runtime, principal: Principal, anomaly_id: uuid.UUID, status: str, note: str) -> Row:
    """An institution explains its anomaly; a supervisor explains or confirms one of its region."""
    now = runtime.clock()
    allowed = {"explained"} if principal.role in INSTITUTION_ROLES else {"explained", "confirmed"}
    if principal.role not in INSTITUTION_ROLES and principal.role is not Role.SUPERVISOR:
        error = ServiceError(ErrorCode.FORBIDDEN, "only institutions and supervisors handle anomalies", "input")
        await audit.refuse(runtime.sessions, principal, "handleAnomaly", error, now, f"anomaly:{anomaly_id}")
    if status not in allowed:
        raise ServiceError(
            ErrorCode.INVALID_FIELD, f"a {principal.role} may set: {', '.join(sorted(allowed))}", "input.status"
        )
    if not note.strip():
        raise ServiceError(ErrorCode.MISSING_FIELD, "handling an anomaly takes a note", "input.note")
    fits(note.strip(), "input.note", models.Anomaly.note)
    table = models.Anomaly.__table__
    async with runtime.sessions() as session:
        found = (
            (
                await session.execute(
                    select(table).where(table.c.id == anomaly_id, access.anomalies(principal)).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if found is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no anomaly {anomaly_id}", "input.id")
        handler = f"{principal.role}:{principal.org}:{principal.subject}"
        await session.execute(
            update(table)
            .where(table.c.id == anomaly_id)
            .values(status=status, note=note.strip(), handled_by=handler, handled_at=now)
        )
        await audit.append(
            session,
            audit.AuditRecord(
                audit.Actor.of(principal), "handleAnomaly", "allowed", now, f"anomaly:{anomaly_id}", {"status": status}
            ),
        )
        await session.commit()
    return dict(found) | {"status": status, "note": note.strip(), "handled_by": handler, "handled_at": now}


async def record_prescription(
    runtime: Runtime, principal: Principal, prescription_id: str, person: str, drugs: list[str], issued_on: date
) -> Row:
    """The prescribing hospital records an e-prescription (a pharmacy's sale is matched to it)."""
    now = runtime.clock()
    if principal.role is not Role.HOSPITAL:
        error = ServiceError(ErrorCode.FORBIDDEN, "only a prescribing hospital records e-prescriptions", "input")
        await audit.refuse(runtime.sessions, principal, "recordPrescription", error, now, prescription_id)
    if not prescription_id.strip() or not drugs:
        raise ServiceError(ErrorCode.MISSING_FIELD, "a prescription has an id and at least one drug", "input")
    fits(prescription_id, "input.prescriptionId", models.Prescription.prescription_id)
    fits(person, "input.person", models.Person.psn_no)
    for index, drug in enumerate(drugs):
        fits(drug, f"input.drugs[{index}]", models.Drug.code)
    people = models.Person.__table__
    table = models.Prescription.__table__
    async with runtime.sessions() as session:
        person_id = (await session.execute(select(people.c.id).where(people.c.psn_no == person))).scalar_one_or_none()
        if person_id is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no insured person {person}", "input.person")
        if (await session.execute(select(table.c.id).where(table.c.prescription_id == prescription_id))).first():
            raise ServiceError(
                ErrorCode.DUPLICATE, f"prescription {prescription_id} is already recorded", "input.prescriptionId"
            )
        row = {
            "id": uuid7(),
            "prescription_id": prescription_id,
            "hospital_code": principal.org,
            "person_id": person_id,
            "drugs": sorted(set(drugs)),
            "issued_on": issued_on,
            "recorded_at": now,
        }
        await session.execute(table.insert().values(row))
        await audit.append(
            session,
            audit.AuditRecord(
                audit.Actor.of(principal), "recordPrescription", "allowed", now, f"prescription:{prescription_id}"
            ),
        )
        await session.commit()
    return row
