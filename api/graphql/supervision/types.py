from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import strawberry
from strawberry.scalars import JSON

from api.services.supervision import AnomalyView


@strawberry.enum
class AnomalyStatus(StrEnum):
    OPEN = "open"
    EXPLAINED = "explained"
    CONFIRMED = "confirmed"


@strawberry.type(description="Something for a fund supervisor to look at, detected when written or by a scan.")
class Anomaly:
    id: strawberry.ID
    kind: str
    severity: str
    status: AnomalyStatus
    code: str | None
    institution: str
    region: str
    drug: str | None
    settlement_id: strawberry.ID | None
    detected_at: datetime
    detected_by: str
    detail: JSON
    handled_by: str | None
    handled_at: datetime | None
    note: str | None


def anomaly_type(anomaly: AnomalyView) -> Anomaly:
    return Anomaly(
        id=strawberry.ID(str(anomaly.id)),
        kind=anomaly.kind,
        severity=anomaly.severity,
        status=AnomalyStatus(anomaly.status),
        code=anomaly.code,
        institution=anomaly.institution,
        region=anomaly.region,
        drug=anomaly.drug,
        settlement_id=None if anomaly.settlement_id is None else strawberry.ID(str(anomaly.settlement_id)),
        detected_at=anomaly.detected_at,
        detected_by=anomaly.detected_by,
        detail=JSON(anomaly.detail),
        handled_by=anomaly.handled_by,
        handled_at=anomaly.handled_at,
        note=anomaly.note,
    )


@strawberry.type
class AnomalyEdge:
    cursor: str
    node: Anomaly


@strawberry.type
class AnomalyPageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class AnomalyConnection:
    edges: list[AnomalyEdge]
    page_info: AnomalyPageInfo


@strawberry.input
class AnomalyFilter:
    region: str | None = None
    institution: str | None = None
    drug: str | None = None
    kind: str | None = None
    status: AnomalyStatus | None = None
    detected_from: date | None = None
    detected_to: date | None = None


@strawberry.type(description="One use of a traceability code.")
class TraceEvent:
    code: str
    drug: str
    kind: str
    institution: str
    settlement_id: strawberry.ID | None
    line_index: int
    units: int
    patient: str = strawberry.field(description="The patient, by the keyed blind index of their ID number.")
    occurred_at: datetime


@strawberry.type
class KindCount:
    name: str
    count: int


@strawberry.type(description="An institution's anomalies against its settlements over a period.")
class RiskSummary:
    institution: str
    settlements: int
    anomalies: int
    open_anomalies: int
    anomalies_per_hundred_settlements: float
    by_kind: list[KindCount]
    by_severity: list[KindCount]


@strawberry.type(description="One thing wrong with the audit log: where in the chain, which entry, what.")
class AuditProblem:
    sequence: int | None = strawberry.field(description="The first bad sequence number.")
    through: int | None = strawberry.field(description="The last sequence it may concern, when it spans several.")
    entry: strawberry.ID | None
    problem: str


@strawberry.type(description="The audit log's hash chain, recomputed and held against the witnesses.")
class AuditVerification:
    intact: bool
    entries: int
    sealed: int
    checkpoints: int
    pending: int = strawberry.field(description="Genuine entries the sealer has not chained yet (seconds old).")
    forged: int = strawberry.field(description="Entries the service did not write (their MAC does not verify).")
    witnessed: int | None = strawberry.field(
        description="The longest chain a witness outside the database vouches for; entries after it could "
        "still vanish unnoticed."
    )
    first_problem: str | None
    first_problem_sequence: int | None
    first_problem_entry: strawberry.ID | None
    problems: list[AuditProblem] = strawberry.field(description="The first problems, in chain order.")
    problem_count: int


@strawberry.type
class PrescriptionRecord:
    prescription_id: str
    hospital: str
    drugs: list[str]
