"""The fund supervisors' side of traceability: anomaly scans, anomalies by page and filter, a
code's history, an institution's risk summary, handling anomalies, and e-prescriptions (which
the prescribing hospital records and dual-channel pharmacy sales are matched to).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication import ErrorCode
from adjudication.anomaly_handling import (
    COUNTED,
    EXPLANATIONS_MAX,
    Handler,
    Status,
    Step,
    may_take,
    status_after,
)
from adjudication.tracecodes import FINDING_KIND, AnomalyKind, Problem, check_line, detect
from api.auth import Principal, Role
from api.db import models
from api.db.anomalies import Anomaly
from api.errors import ServiceError
from api.ids import uuid7
from api.services import access, audit, cursors, tracing
from api.services.requests import fits
from api.services.runtime import SERVICE_ZONE, Runtime
from api.tables import table_of

Row = dict[str, Any]
PAGE = 500
"""Rows per page: of a query's answer, and of an export read from the database at a time."""
ANOMALY_STATUSES = tuple(status.value for status in Status)


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


@dataclass(frozen=True, slots=True)
class AnomalyStepView:
    """One step in handling an anomaly, as it was taken: who (role, organisation, person: the
    subject of their token), when, and their explanation or the reason for their decision.
    """

    sequence: int
    kind: str
    note: str
    role: str
    organisation: str
    person: str
    at: datetime


@dataclass(frozen=True, slots=True)
class AnomalyView:
    """An anomaly as its institution and its supervisors see it, with every step taken on it."""

    id: uuid.UUID
    kind: str
    severity: str
    status: str
    code: str | None
    institution: str
    region: str
    drug: str | None
    settlement_id: uuid.UUID | None
    detected_at: datetime
    detected_by: str
    detail: Mapping[str, object]
    steps: tuple[AnomalyStepView, ...]

    @property
    def latest_step(self) -> AnomalyStepView | None:
        return self.steps[-1] if self.steps else None

    @property
    def explanations(self) -> tuple[AnomalyStepView, ...]:
        return tuple(step for step in self.steps if step.kind == Step.EXPLAINED)

    @property
    def decision(self) -> AnomalyStepView | None:
        """The supervisor's decision (confirmed or dismissed), once taken: it is the last step."""
        latest = self.latest_step
        return latest if latest is not None and latest.kind != Step.EXPLAINED else None


def _step(step: models.AnomalyStep) -> AnomalyStepView:
    return AnomalyStepView(
        sequence=step.sequence,
        kind=step.kind,
        note=step.note,
        role=step.role,
        organisation=step.org,
        person=step.subject,
        at=step.taken_at,
    )


def _anomaly(anomaly: models.Anomaly, steps: tuple[AnomalyStepView, ...]) -> AnomalyView:
    return AnomalyView(
        id=anomaly.id,
        kind=anomaly.kind,
        severity=anomaly.severity,
        status=anomaly.status,
        code=anomaly.code,
        institution=anomaly.institution_code,
        region=anomaly.region,
        drug=anomaly.drug_code,
        settlement_id=anomaly.settlement_id,
        detected_at=anomaly.detected_at,
        detected_by=anomaly.detected_by,
        detail=anomaly.detail,
        steps=steps,
    )


async def _with_steps(session: AsyncSession, found: list[models.Anomaly]) -> list[AnomalyView]:
    """The anomalies with their steps, read in one query for the whole page."""
    table = models.AnomalyStep.__table__
    taken: dict[uuid.UUID, list[AnomalyStepView]] = {}
    if found:
        statement = (
            select(models.AnomalyStep)
            .where(table.c.anomaly_id.in_([anomaly.id for anomaly in found]))
            .order_by(table.c.anomaly_id, table.c.sequence)
        )
        for step in (await session.execute(statement)).scalars():
            taken.setdefault(step.anomaly_id, []).append(_step(step))
    return [_anomaly(anomaly, tuple(taken.get(anomaly.id, ()))) for anomaly in found]


async def anomalies(
    runtime: Runtime, principal: Principal, where: AnomalyFilter, first: int, after: str | None
) -> tuple[list[AnomalyView], bool]:
    """Newest first, by keyset on the (time-ordered) id."""
    if not 1 <= first <= PAGE:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"first must be between 1 and {PAGE}", "first")
    table = models.Anomaly.__table__
    statement = (
        select(models.Anomaly).where(*_anomaly_where(principal, where)).order_by(table.c.id.desc()).limit(first + 1)
    )
    if after is not None:
        statement = statement.where(table.c.id < cursors.decode("anomaly", after))
    async with runtime.sessions() as session:
        found = list((await session.execute(statement)).scalars())
        page = await _with_steps(session, found[:first])
    return page, len(found) > first


async def stream_anomalies(runtime: Runtime, principal: Principal, where: AnomalyFilter) -> AsyncIterator[AnomalyView]:
    """Every matching anomaly, a page at a time: an export never holds them all in memory."""
    after: str | None = None
    while True:
        page, more = await anomalies(runtime, principal, where, PAGE, after)
        for anomaly in page:
            yield anomaly
        if not more:
            return
        after = cursor_of(page[-1].id)


@dataclass(frozen=True, slots=True)
class TraceEventView:
    """One use of a traceability code; the patient by the keyed blind index of their ID number."""

    id: uuid.UUID
    code: str
    drug: str
    kind: str
    institution: str
    settlement_id: uuid.UUID | None
    line_index: int
    units: int
    patient_index: str
    occurred_at: datetime


def _event(event: models.TraceEvent) -> TraceEventView:
    return TraceEventView(
        id=event.id,
        code=event.code,
        drug=event.drug_code,
        kind=event.kind,
        institution=event.institution_code,
        settlement_id=event.settlement_id,
        line_index=event.line_index,
        units=event.units,
        patient_index=event.patient_index,
        occurred_at=event.occurred_at,
    )


async def stream_code_history(runtime: Runtime, principal: Principal, code: str) -> AsyncIterator[TraceEventView]:
    """Every event of one traceability code that the caller may see, in time order, read a page
    at a time by keyset on (occurred_at, id): an export never holds them all in memory.
    """
    events = models.TraceEvent.__table__
    statement = (
        select(models.TraceEvent)
        .where(events.c.code == code, access.trace_events(principal))
        .order_by(events.c.occurred_at, events.c.id)
        .limit(PAGE)
    )
    page_statement = statement
    while True:
        async with runtime.sessions() as session:
            page = [_event(event) for event in (await session.execute(page_statement)).scalars()]
        for event in page:
            yield event
        if len(page) < PAGE:
            return
        at, last = page[-1].occurred_at, page[-1].id
        page_statement = statement.where(
            (events.c.occurred_at > at) | ((events.c.occurred_at == at) & (events.c.id > last))
        )


async def code_history(runtime: Runtime, principal: Principal, code: str) -> list[TraceEventView]:
    """Every event of one traceability code that the caller may see, in time order."""
    return [event async for event in stream_code_history(runtime, principal, code)]


@dataclass(frozen=True, slots=True)
class AnomalyCounts:
    """Anomalies that count towards a risk, by where their handling stands: not yet handled
    (open), explained by the institution and awaiting a supervisor's decision, confirmed by a
    supervisor. A dismissed anomaly counts nowhere: a supervisor judged it not to be one.
    """

    open: int = 0
    explained: int = 0
    confirmed: int = 0

    @property
    def total(self) -> int:
        return self.open + self.explained + self.confirmed

    def plus(self, status: str, count: int) -> AnomalyCounts:
        return replace(self, **{status: getattr(self, status) + count})


@dataclass(frozen=True, slots=True)
class RiskSummary:
    institution: str
    settlements: int
    counts: AnomalyCounts
    by_kind: dict[str, AnomalyCounts]
    by_severity: dict[str, AnomalyCounts]

    @property
    def anomalies(self) -> int:
        return self.counts.total

    @property
    def anomalies_per_hundred_settlements(self) -> float:
        return round(100 * self.anomalies / self.settlements, 2) if self.settlements else 0.0


async def risk_summary(
    runtime: Runtime, principal: Principal, institution: str, start: date | None, end: date | None
) -> RiskSummary | None:
    """Settlements (by service date) and anomalies (by the day detected, dismissed ones left out)
    of a visible institution between two dates, each bound optional; None when the caller may
    not see the institution. The anomalies are counted by the database: a summary is a handful
    of rows, however many anomalies it counts.
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
                .where(*where, table.c.status.in_([status.value for status in COUNTED]))
                .group_by(table.c.kind, table.c.severity, table.c.status)
            )
        ).all()
    counts = AnomalyCounts()
    by_kind: dict[str, AnomalyCounts] = {}
    by_severity: dict[str, AnomalyCounts] = {}
    for kind, severity, status, n in groups:
        counts = counts.plus(status, n)
        by_kind[kind] = by_kind.get(kind, AnomalyCounts()).plus(status, n)
        by_severity[severity] = by_severity.get(severity, AnomalyCounts()).plus(status, n)
    return RiskSummary(institution, int(count), counts, by_kind, by_severity)


HANDLERS = {Role.HOSPITAL: Handler.INSTITUTION, Role.PHARMACY: Handler.INSTITUTION, Role.SUPERVISOR: Handler.SUPERVISOR}
NOT_YOURS = {
    Handler.INSTITUTION: "a decision is the supervisor's: an institution explains its anomaly (EXPLAINED)",
    Handler.SUPERVISOR: "an explanation is the institution's: a supervisor confirms or dismisses an anomaly "
    "(CONFIRMED or DISMISSED), giving the reason",
}
NOTE_NEEDED = {
    Handler.INSTITUTION: "an explanation takes a note saying what happened",
    Handler.SUPERVISOR: "a decision takes its reason",
}


async def handle(runtime: Runtime, principal: Principal, anomaly_id: uuid.UUID, status: str, note: str) -> AnomalyView:
    """One step in handling an anomaly, appended to those before it (none is overwritten): its
    institution explains it, as often as it has more to say; a supervisor of its region confirms
    or dismisses it, with the reason. A decision is final. Every refusal writes nothing (a
    refusal of the caller's role is audited, like every denied attempt).
    """
    now = runtime.clock()
    target = f"anomaly:{anomaly_id}"
    handler = HANDLERS.get(principal.role)
    if handler is None:
        error = ServiceError(ErrorCode.FORBIDDEN, "only institutions and supervisors handle anomalies", "input")
        await audit.refuse(runtime.sessions, principal, "handleAnomaly", error, now, target)
    if status not in {kind.value for kind in Step}:
        raise ServiceError(
            ErrorCode.INVALID_FIELD,
            "an anomaly is open until a step is taken: EXPLAINED, CONFIRMED or DISMISSED",
            "input.status",
        )
    step = Step(status)
    if not may_take(handler, step):
        error = ServiceError(ErrorCode.FORBIDDEN, NOT_YOURS[handler], "input.status")
        await audit.refuse(runtime.sessions, principal, "handleAnomaly", error, now, target)
    text = note.strip()
    if not text:
        raise ServiceError(ErrorCode.MISSING_FIELD, NOTE_NEEDED[handler], "input.note")
    fits(text, "input.note", models.AnomalyStep.note)
    anomalies = models.Anomaly.__table__
    async with runtime.sessions() as session:
        found = (
            (
                await session.execute(
                    select(models.Anomaly)
                    .where(anomalies.c.id == anomaly_id, access.anomalies(principal))
                    .with_for_update()
                )
            )
            .scalars()
            .first()
        )
        if found is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no anomaly {anomaly_id}", "input.id")
        after = status_after(Status(found.status), step)
        if after is None:
            raise ServiceError(
                ErrorCode.ANOMALY_DECIDED,
                f"anomaly {anomaly_id} was already {found.status} by a supervisor: a decision is final",
                "input.id",
            )
        (before,) = await _with_steps(session, [found])
        if step is Step.EXPLAINED and len(before.explanations) >= EXPLANATIONS_MAX:
            raise ServiceError(
                ErrorCode.INVALID_FIELD,
                f"anomaly {anomaly_id} has {EXPLANATIONS_MAX} explanations, the most it takes: a supervisor "
                "decides on them",
                "input.id",
            )
        taken = AnomalyStepView(
            sequence=before.steps[-1].sequence + 1 if before.steps else 1,
            kind=step.value,
            note=text,
            role=principal.role.value,
            organisation=principal.org,
            person=principal.subject,
            at=now,
        )
        await session.execute(
            table_of(models.AnomalyStep)
            .insert()
            .values(
                id=uuid7(),
                anomaly_id=anomaly_id,
                sequence=taken.sequence,
                kind=taken.kind,
                note=taken.note,
                role=taken.role,
                org=taken.organisation,
                subject=taken.person,
                taken_at=taken.at,
            )
        )
        await session.execute(update(table_of(models.Anomaly)).where(anomalies.c.id == anomaly_id).values(status=after))
        await audit.append(
            session,
            audit.AuditRecord(
                audit.Actor.of(principal),
                "handleAnomaly",
                "allowed",
                now,
                target,
                {"status": step.value, "step": taken.sequence},
            ),
        )
        await session.commit()
    return replace(before, status=after.value, steps=(*before.steps, taken))


@dataclass(frozen=True, slots=True)
class PrescriptionView:
    prescription_id: str
    hospital: str
    drugs: tuple[str, ...]


async def record_prescription(
    runtime: Runtime, principal: Principal, prescription_id: str, person: str, drugs: list[str], issued_on: date
) -> PrescriptionView:
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
    table = table_of(models.Prescription)
    async with runtime.sessions() as session:
        person_id = (await session.execute(select(people.c.id).where(people.c.psn_no == person))).scalar_one_or_none()
        if person_id is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no insured person {person}", "input.person")
        if (await session.execute(select(table.c.id).where(table.c.prescription_id == prescription_id))).first():
            raise ServiceError(
                ErrorCode.DUPLICATE, f"prescription {prescription_id} is already recorded", "input.prescriptionId"
            )
        recorded = PrescriptionView(prescription_id, principal.org, tuple(sorted(set(drugs))))
        await session.execute(
            table.insert().values(
                id=uuid7(),
                prescription_id=recorded.prescription_id,
                hospital_code=recorded.hospital,
                person_id=person_id,
                drugs=list(recorded.drugs),
                issued_on=issued_on,
                recorded_at=now,
            )
        )
        await audit.append(
            session,
            audit.AuditRecord(
                audit.Actor.of(principal), "recordPrescription", "allowed", now, f"prescription:{prescription_id}"
            ),
        )
        await session.commit()
    return recorded
