"""Traceability codes at the cashier window, and anomalies for the fund supervisors.

At settlement every line's codes are checked (adjudication.tracecodes): malformed, mismatched
or miscounted codes are refused with TRACE_CODE_INVALID, unless the institution's policy for the
drug is to accept and flag them; a line without codes needs the drug on the institution's
no-code list (`check_codes`, before anything is locked). Each package is then taken from: a
whole package must be unsold, a split package must still hold the units (`take_units`, on the
packages the unit of work has locked, after the accumulators and before the pools), so two
institutions scanning one code at once cannot both sell it. A second sale is refused with
TRACE_CODE_ALREADY_SOLD and recorded as an anomaly on its own (`refused_sale`).

The rules here are pure: the repositories (api/db/packages.py, api/db/anomalies.py) read, lock
and write. Anomalies are detected when written and by the supervisors' scan, with the same
rules and the same fingerprints, so that a scan never repeats what the writer found; the scan's
helpers are at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication import ClaimLine, ErrorCode
from adjudication.tracecodes import (
    FINDING_KIND,
    AnomalyKind,
    CodeEvent,
    DrugFacts,
    Problem,
    check_line,
    detect,
    is_well_formed,
)
from adjudication.tracecodes import take_units as units_to_take
from api.db import anomalies, models
from api.db.anomalies import Anomaly
from api.db.base import table_of
from api.db.packages import Package, TraceEvent, taken
from api.db.references import Prescription, TracePolicy
from api.errors import ServiceError
from api.ids import uuid7

NO_POLICY = TracePolicy()


@dataclass(frozen=True, slots=True)
class Dispensing:
    """One claim's sale, as its trace events and anomalies name it."""

    institution: str
    region: str
    serial: str
    settlement_id: uuid.UUID
    person_id: uuid.UUID
    patient_index: str
    at: datetime
    service_date: date

    def anomaly(
        self, kind: AnomalyKind, fingerprint: str, message: str, *, code: str | None = None, drug: str | None = None
    ) -> Anomaly:
        """An anomaly the writer found in this settlement."""
        return Anomaly(
            kind, fingerprint, self.institution, self.region, self.at, "write", message, self.settlement_id, drug, code
        )


@dataclass(frozen=True, slots=True)
class CheckedCodes:
    """A claim's codes as checked: those well formed enough to take units from, by line (in the
    order scanned), and the anomalies found in them.
    """

    usable: tuple[tuple[int, str], ...]
    anomalies: tuple[Anomaly, ...]

    def packages(self, lines: Sequence[ClaimLine], drugs: Mapping[str, DrugFacts]) -> dict[str, tuple[str, int]]:
        """The packages to take from: code -> (drug, package units)."""
        return {code: (lines[i].drug, drugs[lines[i].drug].package_units) for i, code in self.usable}


@dataclass(frozen=True, slots=True)
class Sale:
    """What a settlement writes about its codes: its packages after the sale, its events, and
    the anomalies found (in the codes themselves and in their history).
    """

    packages: tuple[Package, ...] = ()
    events: tuple[TraceEvent, ...] = ()
    anomalies: tuple[Anomaly, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Oversold:
    """Line `index` asks for more units than its packages hold: `code` was sold already."""

    index: int
    code: str
    split: bool


def check_codes(
    lines: Sequence[ClaimLine],
    drugs: Mapping[str, DrugFacts],
    policies: Mapping[str, TracePolicy],
    prescriptions: Mapping[str, Prescription] | None,
    dispensing: Dispensing,
) -> CheckedCodes:
    """Every line's codes against its drug; raises TRACE_CODE_INVALID unless the institution's
    policy flags instead. With `prescriptions` (a dual-channel pharmacy sale), each line needs
    the prescribing hospital's e-prescription for this patient and drug, or is flagged.
    """
    found: list[Anomaly] = []
    usable: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        drug = drugs[line.drug]
        policy = policies.get(line.drug, NO_POLICY)
        for finding in check_line(
            line.trace_codes, line.quantity, split=line.split, package_units=drug.package_units, prefixes=drug.prefixes
        ):
            kind = FINDING_KIND[finding.problem]
            if finding.problem is Problem.NO_CODE:
                flagged = policy.no_code_stock
            else:
                flagged = policy.invalid_codes == "accept_and_flag"
            if not flagged:
                raise ServiceError(ErrorCode.TRACE_CODE_INVALID, finding.message, f"claim.lines[{index}].traceCodes")
            if finding.problem is Problem.PRODUCT_MISMATCH:
                continue  # the code's event carries it (see `detect`), as the scan will judge it
            fingerprint = line_fingerprint(kind, dispensing.settlement_id, index, finding.code or "")
            found.append(dispensing.anomaly(kind, fingerprint, finding.message, code=finding.code, drug=line.drug))
        usable.extend((index, code) for code in dict.fromkeys(line.trace_codes) if is_well_formed(code))
    if prescriptions is not None:
        kind = AnomalyKind.NO_PRESCRIPTION
        for index, line in enumerate(lines):
            prescription = prescriptions.get(line.prescription_id or "")
            if prescription is None or not prescription.covers(dispensing.person_id, line.drug):
                found.append(
                    dispensing.anomaly(
                        kind,
                        line_fingerprint(kind, dispensing.settlement_id, index),
                        f"no e-prescription {line.prescription_id or '(none given)'} for this patient and drug",
                        drug=line.drug,
                    )
                )
    return CheckedCodes(tuple(usable), tuple(found))


def take_units(
    lines: Sequence[ClaimLine],
    checked: CheckedCodes,
    packages: Mapping[str, Package],
    history: Sequence[CodeEvent],
    drugs: Mapping[str, DrugFacts],
    dispensing: Dispensing,
    reversal_window: timedelta,
) -> Sale | Oversold:
    """Take each line's units from its (locked) packages: every unit of a whole package, the
    units asked for from a split one, in the order scanned; and detect what the new events show
    after the codes' `history`.
    """
    after = dict(packages)
    events: list[TraceEvent] = []
    for index, line in enumerate(lines):
        codes = [code for i, code in checked.usable if i == index]
        if not codes:
            continue
        remaining = [after[code].remaining for code in codes]
        whole = all(units == after[code].package_units for code, units in zip(codes, remaining, strict=True))
        taking = units_to_take(line.quantity, remaining) if line.split else (remaining if whole else None)
        if taking is None:
            opened = (c for c, units in zip(codes, remaining, strict=True) if units < after[c].package_units)
            return Oversold(index, next(opened, codes[0]), line.split)
        for code, units in zip(codes, taking, strict=True):
            if units:
                after[code] = taken(after[code], units)
                events.append(
                    TraceEvent(
                        code,
                        line.drug,
                        "sold",
                        dispensing.institution,
                        dispensing.region,
                        dispensing.settlement_id,
                        index,
                        units,
                        dispensing.patient_index,
                        dispensing.at,
                        uuid7(),
                    )
                )
    new = {
        str(e.id): CodeEvent(
            str(e.id), e.code, e.drug, e.kind, e.units, e.occurred_at, dispensing.service_date, e.institution
        )
        for e in events
    }
    found = [
        dispensing.anomaly(detection.kind, detection.fingerprint, detection.message, code=detection.code)
        for detection in detect([*history, *new.values()], drugs, reversal_window)
        if detection.event_id in new
    ]
    return Sale(tuple(after.values()), tuple(events), (*checked.anomalies, *found))


def refused_sale(
    oversold: Oversold, last_sale: tuple[str, datetime] | None, drug: str, dispensing: Dispensing
) -> tuple[ServiceError, Anomaly]:
    """The refusal of a second sale, naming where and when the code was sold (the institution
    by name only when it is the caller's own), and its anomaly, kept though the claim is refused.
    """
    sold_here = last_sale is not None and last_sale[0] == dispensing.institution
    place = "here" if sold_here else "at another institution"
    when = f" on {last_sale[1]:%Y-%m-%d %H:%M} UTC" if last_sale is not None else ""
    code = oversold.code
    kind = AnomalyKind.UNITS_BEYOND_PACKAGE if oversold.split else AnomalyKind.CODE_REUSED
    message = (
        f"traceability code {code} holds fewer units than dispensed (sold {place}{when})"
        if oversold.split
        else f"traceability code {code} was already sold {place}{when}"
    )
    record = Anomaly(
        kind,
        f"{kind}:refused:{dispensing.institution}:{dispensing.serial}:{code}",
        dispensing.institution,
        dispensing.region,
        dispensing.at,
        "write",
        message,
        None,  # the refused claim never settled
        drug,
        code,
        {"serial": dispensing.serial, "sold_at_institution": last_sale[0] if last_sale else None},
    )
    field_name = f"claim.lines[{oversold.index}].traceCodes"
    return ServiceError(ErrorCode.TRACE_CODE_ALREADY_SOLD, message, field_name), record


# --- the supervisors' scan (api/services/supervision.py) and the audit sealer ------------------


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
    detail: Mapping[str, Any] | None = None,
) -> Anomaly:
    return Anomaly(
        kind, fingerprint, institution, region, at, detected_by, message, settlement_id, drug, code, detail or {}
    )


def line_fingerprint(kind: AnomalyKind, settlement_id: uuid.UUID, index: int, *detail: str) -> str:
    """The fingerprint of an anomaly on one line of a settlement: the writer's and the scan's."""
    return ":".join((kind, str(settlement_id), str(index), *detail))


def prescribed(prescription: Mapping[Any, Any] | None, person_id: uuid.UUID, drug: str) -> bool:
    """Whether an e-prescription (a `prescriptions` row) covers this patient and drug."""
    return prescription is not None and prescription["person_id"] == person_id and drug in prescription["drugs"]


async def drug_facts(session: AsyncSession, drugs: Sequence[str]) -> dict[str, DrugFacts]:
    table = table_of(models.Drug)
    rows = await session.execute(
        select(table.c.code, table.c.package_units, table.c.trace_prefixes, table.c.listed_on).where(
            table.c.code.in_(sorted(set(drugs)))
        )
    )
    return {row.code: DrugFacts(row.package_units, tuple(row.trace_prefixes), row.listed_on) for row in rows}


async def event_rows(session: AsyncSession, codes: Sequence[str] | None = None) -> Sequence[RowMapping]:
    """Trace events with their settlement's service date: of these codes, or all of them."""
    events, settlements = table_of(models.TraceEvent), table_of(models.Settlement)
    statement = select(events, settlements.c.service_date).join(settlements, settlements.c.id == events.c.settlement_id)
    if codes is not None:
        statement = statement.where(events.c.code.in_(sorted(set(codes))))
    return (await session.execute(statement)).mappings().all()


def code_event(row: Mapping[Any, Any]) -> CodeEvent:
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


async def record_anomalies(session: AsyncSession, found: Sequence[Anomaly]) -> None:
    """Insert anomalies not yet recorded (a fingerprint is recorded once)."""
    await anomalies.record(session, found)
