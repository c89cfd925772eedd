"""Traceability codes at the cashier window, and anomalies for the fund supervisors.

At settlement every line's codes are checked (adjudication.tracecodes): malformed, mismatched
or miscounted codes are refused with TRACE_CODE_INVALID, unless the institution's policy for the
drug is to accept and flag them; a line without codes needs the drug on the institution's
no-code list. Each package is then taken from: a whole package must be unsold, a split package
must still hold the units. The package rows are locked (after the accumulators, before the
pools), so two institutions scanning one code at once cannot both sell it. A second sale is
refused with TRACE_CODE_ALREADY_SOLD and recorded as an anomaly on its own.

Anomalies are detected when written and by `scan`, with the same rules and the same
fingerprints, so that a scan never repeats what the writer found.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication import ErrorCode, Visit
from adjudication.tracecodes import (
    FINDING_KIND,
    AnomalyKind,
    CodeEvent,
    DrugFacts,
    Problem,
    check_line,
    detect,
    is_well_formed,
    take_units,
)
from api.db import models
from api.db.statements import insert_missing
from api.errors import ServiceError
from api.ids import uuid7
from api.services.requests import ClaimRequest

Row = dict[str, Any]


class TraceRefusal(ServiceError):
    """A refused sale that must still be recorded: its anomalies are written on their own."""

    def __init__(self, code: ErrorCode, message: str, field: str, anomalies: list[Row]) -> None:
        super().__init__(code, message, field)
        self.anomalies = anomalies


@dataclass(slots=True)
class TracePlan:
    """What a settlement writes about its codes: package changes, events, anomalies."""

    packages: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    anomalies: list[Row] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Where:
    institution: str
    region: str
    settlement_id: uuid.UUID
    patient_index: str
    person_id: uuid.UUID
    at: datetime
    service_date: date

    def anomaly(
        self, kind: AnomalyKind, fingerprint: str, message: str, *, code: str | None = None, drug: str | None = None
    ) -> Row:
        """An anomaly the writer found in this settlement."""
        return anomaly(
            kind,
            fingerprint,
            institution=self.institution,
            region=self.region,
            settlement_id=self.settlement_id,
            drug=drug,
            code=code,
            at=self.at,
            detected_by="write",
            message=message,
        )


def anomaly(
    kind: AnomalyKind,
    fingerprint: str,
    *,
    institution: str,
    region: str,
    settlement_id: uuid.UUID | None,
    drug: str | None,
    code: str | None,
    at: datetime,
    detected_by: str,
    message: str,
) -> Row:
    return {
        "id": uuid7(),
        "kind": kind.value,
        "severity": kind.severity,
        "status": "open",
        "fingerprint": fingerprint[:200],
        "code": None if code is None else code[:40],
        "institution_code": institution,
        "region": region,
        "drug_code": drug,
        "settlement_id": settlement_id,
        "detected_at": at,
        "detected_by": detected_by,
        "detail": {"message": message},
        "handled_by": None,
        "handled_at": None,
        "note": None,
    }


def line_fingerprint(kind: AnomalyKind, settlement_id: uuid.UUID, index: int, *detail: str) -> str:
    """The fingerprint of an anomaly on one line of a settlement: the writer's and the scan's."""
    return ":".join((kind, str(settlement_id), str(index), *detail))


def prescribed(prescription: Mapping[Any, Any] | None, person_id: uuid.UUID, drug: str) -> bool:
    """Whether an e-prescription covers this patient and drug."""
    return prescription is not None and prescription["person_id"] == person_id and drug in prescription["drugs"]


async def drug_facts(session: AsyncSession, drugs: Sequence[str]) -> dict[str, DrugFacts]:
    table = models.Drug.__table__
    rows = await session.execute(
        select(table.c.code, table.c.package_units, table.c.trace_prefixes, table.c.listed_on).where(
            table.c.code.in_(sorted(set(drugs)))
        )
    )
    return {row.code: DrugFacts(row.package_units, tuple(row.trace_prefixes), row.listed_on) for row in rows}


async def _policies(session: AsyncSession, institution: str, drugs: Sequence[str]) -> dict[str, Row]:
    table = models.TracePolicy.__table__
    rows = await session.execute(
        select(table).where(table.c.institution_code == institution, table.c.drug_code.in_(sorted(set(drugs))))
    )
    return {row["drug_code"]: dict(row) for row in rows.mappings()}


async def plan_sale(
    session: AsyncSession, request: ClaimRequest, where: Where, reversal_window: timedelta, *, lock: bool
) -> TracePlan:
    """Check the claim's codes and take its units from their packages. Raises TRACE_CODE_INVALID
    or TRACE_CODE_ALREADY_SOLD (a TraceRefusal when the refusal is itself an anomaly).
    """
    drugs = [line.drug for line in request.lines]
    facts = await drug_facts(session, drugs)
    policies = await _policies(session, request.institution, drugs)
    plan = TracePlan()
    usable: list[tuple[int, str]] = []  # (line index, code) of well-formed codes, in scan order
    for index, line in enumerate(request.lines):
        drug = facts[line.drug]
        policy = policies.get(line.drug, {"invalid_codes": "refuse", "no_code_stock": False})
        for finding in check_line(
            line.trace_codes, line.quantity, split=line.split, package_units=drug.package_units, prefixes=drug.prefixes
        ):
            kind = FINDING_KIND[finding.problem]
            flagged = (
                policy["no_code_stock"]
                if finding.problem is Problem.NO_CODE
                else policy["invalid_codes"] == "accept_and_flag"
            )
            if not flagged:
                raise ServiceError(ErrorCode.TRACE_CODE_INVALID, finding.message, f"claim.lines[{index}].traceCodes")
            if finding.problem is Problem.PRODUCT_MISMATCH:
                continue  # the code's event carries it (see `detect`), as the scan will judge it
            plan.anomalies.append(
                where.anomaly(
                    kind,
                    line_fingerprint(kind, where.settlement_id, index, finding.code or ""),
                    finding.message,
                    code=finding.code,
                    drug=line.drug,
                )
            )
        usable.extend((index, code) for code in dict.fromkeys(line.trace_codes) if is_well_formed(code))
    if request.visit is Visit.PHARMACY:
        plan.anomalies.extend(await _unprescribed(session, request, where))
    if not usable:
        return plan
    packages = await _packages(session, request, usable, facts, lock=lock)
    seen = [code for code, row in packages.items() if row["last_event_at"] is not None]
    history = [code_event(row) for row in await event_rows(session, seen)] if seen else []
    for index, line in enumerate(request.lines):
        codes = [code for i, code in usable if i == index]
        if not codes:
            continue
        remaining = [packages[code]["package_units"] - packages[code]["units_sold"] for code in codes]
        whole = all(units == packages[code]["package_units"] for code, units in zip(codes, remaining, strict=True))
        taken = take_units(line.quantity, remaining) if line.split else (remaining if whole else None)
        if taken is None:
            raise await _already_sold(session, request, where, index, codes, packages, remaining, line.split)
        for code, units in zip(codes, taken, strict=True):
            if units:
                packages[code]["units_sold"] += units
                plan.events.append(
                    {
                        "id": uuid7(),
                        "code": code,
                        "drug_code": line.drug,
                        "kind": "sold",
                        "institution_code": where.institution,
                        "region": where.region,
                        "settlement_id": where.settlement_id,
                        "line_index": index,
                        "units": units,
                        "patient_index": where.patient_index,
                        "occurred_at": where.at,
                    }
                )
    plan.packages = [
        {"row_id": row["id"], "units_sold": row["units_sold"], "last_event_at": where.at} for row in packages.values()
    ]
    new = {str(row["id"]): code_event(row | {"service_date": where.service_date}) for row in plan.events}
    for detection in detect([*history, *new.values()], facts, reversal_window):
        if detection.event_id in new:
            plan.anomalies.append(
                where.anomaly(detection.kind, detection.fingerprint, detection.message, code=detection.code)
            )
    return plan


def code_event(row: Mapping[str, Any]) -> CodeEvent:
    """A trace event row (with its settlement's service date) as the detector reads it."""
    return CodeEvent(
        str(row["id"]),
        row["code"],
        row["drug_code"],
        row["kind"],
        row["units"],
        row["occurred_at"],
        row["service_date"],
        row["institution_code"],
    )


async def _packages(
    session: AsyncSession,
    request: ClaimRequest,
    usable: list[tuple[int, str]],
    facts: Mapping[str, DrugFacts],
    *,
    lock: bool,
) -> dict[str, Row]:
    table = models.TracePackage.__table__
    codes = sorted({code for _, code in usable})
    if lock:
        drug_of = {code: request.lines[index].drug for index, code in usable}
        await insert_missing(
            session,
            table,
            [
                {
                    "id": uuid7(),
                    "code": code,
                    "drug_code": drug_of[code],
                    "package_units": facts[drug_of[code]].package_units,
                    "units_sold": 0,
                    "last_event_at": None,
                }
                for code in codes
            ],
            ["code"],
        )
    statement = select(table).where(table.c.code.in_(codes)).order_by(table.c.code)
    if lock:
        statement = statement.with_for_update()
    found = {row["code"]: dict(row) for row in (await session.execute(statement)).mappings()}
    for index, code in usable:  # not yet seen (pre-settlement does not create them)
        drug = request.lines[index].drug
        found.setdefault(
            code,
            {
                "id": None,
                "code": code,
                "drug_code": drug,
                "package_units": facts[drug].package_units,
                "units_sold": 0,
                "last_event_at": None,
            },
        )
    return found


async def event_rows(session: AsyncSession, codes: Sequence[str] | None = None) -> Sequence[Mapping[str, Any]]:
    """Trace events with their settlement's service date: of these codes, or all of them."""
    events = models.TraceEvent.__table__
    settlements = models.Settlement.__table__
    statement = select(events, settlements.c.service_date).join(settlements, settlements.c.id == events.c.settlement_id)
    if codes is not None:
        statement = statement.where(events.c.code.in_(sorted(set(codes))))
    return (await session.execute(statement)).mappings().all()


async def _already_sold(
    session: AsyncSession,
    request: ClaimRequest,
    where: Where,
    index: int,
    codes: list[str],
    packages: Mapping[str, Row],
    remaining: list[int],
    split: bool,
) -> TraceRefusal:
    """The refusal of a second sale, naming where and when the code was sold (the institution
    by name only when it is the caller's own), with its anomaly.
    """
    opened = (code for code, units in zip(codes, remaining, strict=True) if units < packages[code]["package_units"])
    used = next(opened, codes[0])
    events = models.TraceEvent.__table__
    last = (
        await session.execute(
            select(events.c.institution_code, events.c.occurred_at)
            .where(events.c.code == used, events.c.kind == "sold")
            .order_by(events.c.occurred_at.desc())
            .limit(1)
        )
    ).first()
    place = "here" if last is not None and last.institution_code == request.institution else "at another institution"
    when = f" on {last.occurred_at:%Y-%m-%d %H:%M} UTC" if last is not None else ""
    kind = AnomalyKind.UNITS_BEYOND_PACKAGE if split else AnomalyKind.CODE_REUSED
    message = (
        f"traceability code {used} holds fewer units than dispensed (sold {place}{when})"
        if split
        else f"traceability code {used} was already sold {place}{when}"
    )
    record = anomaly(
        kind,
        f"{kind}:refused:{request.institution}:{request.serial}:{used}",
        institution=where.institution,
        region=where.region,
        settlement_id=None,  # the refused claim never settled
        drug=request.lines[index].drug,
        code=used,
        at=where.at,
        detected_by="write",
        message=message,
    )
    record["detail"] |= {"serial": request.serial, "sold_at_institution": last.institution_code if last else None}
    return TraceRefusal(ErrorCode.TRACE_CODE_ALREADY_SOLD, message, f"claim.lines[{index}].traceCodes", [record])


async def _unprescribed(session: AsyncSession, request: ClaimRequest, where: Where) -> list[Row]:
    """Dual-channel pharmacy lines need the prescribing hospital's e-prescription, for this
    patient and this drug.
    """
    table = models.Prescription.__table__
    ids = sorted({line.prescription_id for line in request.lines if line.prescription_id})
    found = (
        {
            row["prescription_id"]: row
            for row in (await session.execute(select(table).where(table.c.prescription_id.in_(ids)))).mappings()
        }
        if ids
        else {}
    )
    kind = AnomalyKind.NO_PRESCRIPTION
    return [
        where.anomaly(
            kind,
            line_fingerprint(kind, where.settlement_id, index),
            f"no e-prescription {line.prescription_id or '(none given)'} for this patient and drug",
            drug=line.drug,
        )
        for index, line in enumerate(request.lines)
        if not prescribed(found.get(line.prescription_id or ""), where.person_id, line.drug)
    ]


async def write_sale(session: AsyncSession, plan: TracePlan) -> None:
    if plan.packages:
        table = models.TracePackage.__table__
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(units_sold=bindparam("units_sold"), last_event_at=bindparam("last_event_at"))
            .execution_options(synchronize_session=False),
            plan.packages,
        )
    if plan.events:
        await session.execute(models.TraceEvent.__table__.insert(), plan.events)
    await record_anomalies(session, plan.anomalies)


async def record_anomalies(session: AsyncSession, anomalies: Sequence[Row]) -> None:
    """Insert anomalies not yet recorded (a fingerprint is recorded once)."""
    if anomalies:
        await insert_missing(session, models.Anomaly.__table__, list(anomalies), ["fingerprint"])


async def return_units(session: AsyncSession, settlement_id: uuid.UUID, at: datetime) -> None:
    """A reversal frees the units its settlement took: opposite events, packages unlocked in order."""
    events = models.TraceEvent.__table__
    sold = (
        (await session.execute(select(events).where(events.c.settlement_id == settlement_id, events.c.kind == "sold")))
        .mappings()
        .all()
    )
    if not sold:
        return
    packages = models.TracePackage.__table__
    locked = {
        row["code"]: dict(row)
        for row in (
            await session.execute(
                select(packages)
                .where(packages.c.code.in_(sorted({r["code"] for r in sold})))
                .order_by(packages.c.code)
                .with_for_update()
            )
        ).mappings()
    }
    for row in sold:
        locked[row["code"]]["units_sold"] -= row["units"]
    await session.execute(
        update(packages)
        .where(packages.c.id == bindparam("row_id"))
        .values(units_sold=bindparam("units_sold"), last_event_at=bindparam("last_event_at"))
        .execution_options(synchronize_session=False),
        [{"row_id": row["id"], "units_sold": row["units_sold"], "last_event_at": at} for row in locked.values()],
    )
    await session.execute(
        events.insert(),
        [dict(row) | {"id": uuid7(), "kind": "returned", "occurred_at": at} for row in sold],
    )
