from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import strawberry
from strawberry.scalars import JSON

from api.services.supervision import AnomalyView


@strawberry.enum(description="Where an anomaly's handling stands: the name of its latest step, OPEN before any.")
class AnomalyStatus(StrEnum):
    OPEN = "open"
    EXPLAINED = "explained"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


@strawberry.enum(
    description="What a step in handling an anomaly did: EXPLAINED (its institution said what happened), "
    "CONFIRMED or DISMISSED (a supervisor decided, and the decision is final)."
)
class AnomalyStepKind(StrEnum):
    EXPLAINED = "explained"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


@strawberry.type(
    description="One step in handling an anomaly, kept as it was taken: a later step never changes an earlier one."
)
class AnomalyStep:
    kind: AnomalyStepKind
    note: str = strawberry.field(description="The institution's explanation, or the supervisor's reason.")
    role: str = strawberry.field(description="The role of whoever took the step: hospital, pharmacy or supervisor.")
    organisation: str = strawberry.field(description="Their institution's code, or their supervising bureau.")
    person: str = strawberry.field(
        description="Who took the step: the subject of their token (a member of staff, not an insured person)."
    )
    at: datetime


LEGACY = "Read `steps`: each step keeps its own note, who took it (role, organisation, person) and when."


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
    steps: list[AnomalyStep] = strawberry.field(
        description="Every step taken in handling it, in the order taken: the institution's explanations, then "
        "a supervisor's decision."
    )
    handled_by: str | None = strawberry.field(
        description="Who took the latest step, as `role:organisation:person`.", deprecation_reason=LEGACY
    )
    handled_at: datetime | None = strawberry.field(
        description="When the latest step was taken.", deprecation_reason=LEGACY
    )
    note: str | None = strawberry.field(description="The latest step's note.", deprecation_reason=LEGACY)


def anomaly_type(anomaly: AnomalyView) -> Anomaly:
    latest = anomaly.latest_step
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
        steps=[
            AnomalyStep(
                kind=AnomalyStepKind(step.kind),
                note=step.note,
                role=step.role,
                organisation=step.organisation,
                person=step.person,
                at=step.at,
            )
            for step in anomaly.steps
        ],
        handled_by=None if latest is None else f"{latest.role}:{latest.organisation}:{latest.person}",
        handled_at=None if latest is None else latest.at,
        note=None if latest is None else latest.note,
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


@strawberry.type(
    description="An institution's anomalies against its settlements over a period. Anomalies are counted by the "
    "day they were detected (Asia/Shanghai), settlements by their service date; a dismissed anomaly counts nowhere."
)
class RiskSummary:
    institution: str
    settlements: int = strawberry.field(description="Settlements whose service date is in the period.")
    anomalies: int = strawberry.field(
        description="Anomalies detected in the period and not dismissed: open + explained + confirmed."
    )
    open_anomalies: int = strawberry.field(description="Of `anomalies`, those nobody has explained or decided yet.")
    explained_anomalies: int = strawberry.field(
        description="Of `anomalies`, those the institution explained that await a supervisor's decision."
    )
    confirmed_anomalies: int = strawberry.field(description="Of `anomalies`, those a supervisor confirmed.")
    anomalies_per_hundred_settlements: float = strawberry.field(
        description="`anomalies` per 100 `settlements` (0 without settlements), to two decimals."
    )
    by_kind: list[KindCount] = strawberry.field(description="`anomalies` by kind.")
    by_severity: list[KindCount] = strawberry.field(description="`anomalies` by severity.")


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
