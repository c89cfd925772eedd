from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from api.graphql.context import Info
from api.graphql.cost import PAGE_SIZE_DESCRIPTION
from api.graphql.permissions import AnomalyReaders, AuditVerifiers, SupervisorsOnly
from api.graphql.supervision.types import (
    AnomalyConnection,
    AnomalyEdge,
    AnomalyFilter,
    AnomalyPageInfo,
    AuditProblem,
    AuditVerification,
    KindCount,
    RiskSummary,
    TraceEvent,
    anomaly_type,
)
from api.services import audit_chain, audit_witness, supervision


def service_filter(where: AnomalyFilter | None) -> supervision.AnomalyFilter:
    where = where or AnomalyFilter()
    return supervision.AnomalyFilter(
        region=where.region,
        institution=where.institution,
        drug=where.drug,
        kind=where.kind,
        status=None if where.status is None else where.status.value,
        detected_from=where.detected_from,
        detected_to=where.detected_to,
    )


PROBLEMS_SHOWN = 100


@strawberry.type
class SupervisionQueries:
    @strawberry.field(
        description="Anomalies, newest first, with cursor pagination.", permission_classes=[AnomalyReaders]
    )
    async def anomalies(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=PAGE_SIZE_DESCRIPTION)],
        after: str | None = None,
        filter: AnomalyFilter | None = None,
    ) -> AnomalyConnection | None:
        found, more = await supervision.anomalies(  # a refused argument leaves as a coded field error
            info.context.runtime, info.context.principal, service_filter(filter), first, after
        )
        edges = [AnomalyEdge(cursor=supervision.cursor_of(anomaly.id), node=anomaly_type(anomaly)) for anomaly in found]
        return AnomalyConnection(
            edges=edges, page_info=AnomalyPageInfo(has_next_page=more, end_cursor=edges[-1].cursor if edges else None)
        )

    @strawberry.field(
        description="Every use of one traceability code that you may see.", permission_classes=[AnomalyReaders]
    )
    async def trace_code(self, info: Info, code: str) -> list[TraceEvent] | None:
        events = await supervision.code_history(info.context.runtime, info.context.principal, code)
        return [
            TraceEvent(
                code=event.code,
                drug=event.drug,
                kind=event.kind,
                institution=event.institution,
                settlement_id=None if event.settlement_id is None else strawberry.ID(str(event.settlement_id)),
                line_index=event.line_index,
                units=event.units,
                patient=event.patient_index,
                occurred_at=event.occurred_at,
            )
            for event in events
        ]

    @strawberry.field(description="An institution's risk summary over a period.", permission_classes=[SupervisorsOnly])
    async def institution_risk(self, info: Info, institution: str, start: date, end: date) -> RiskSummary | None:
        summary = await supervision.risk_summary(info.context.runtime, info.context.principal, institution, start, end)
        if summary is None:
            return None
        return RiskSummary(
            institution=summary.institution,
            settlements=summary.settlements,
            anomalies=summary.anomalies,
            open_anomalies=summary.counts.open,
            explained_anomalies=summary.counts.explained,
            confirmed_anomalies=summary.counts.confirmed,
            anomalies_per_hundred_settlements=summary.anomalies_per_hundred_settlements,
            by_kind=[KindCount(name=k, count=v.total) for k, v in sorted(summary.by_kind.items())],
            by_severity=[KindCount(name=k, count=v.total) for k, v in sorted(summary.by_severity.items())],
        )

    @strawberry.field(
        description="Recompute the audit log's hash chain, MACs and checkpoints, and hold them against the "
        "configured witnesses; report the first sequence that was altered, removed, forged or cut off.",
        permission_classes=[AuditVerifiers],
    )
    async def verify_audit_log(self, info: Info) -> AuditVerification | None:
        runtime = info.context.runtime
        witnesses = audit_witness.sources(info.context.settings)
        result = await audit_chain.verify(runtime.sessions, runtime.cipher.keyring, runtime.clock(), witnesses)
        first = result.first
        problems = [
            AuditProblem(
                sequence=problem.sequence,
                through=problem.through,
                entry=None if problem.entry_id is None else strawberry.ID(str(problem.entry_id)),
                problem=problem.problem,
            )
            for problem in result.problems[:PROBLEMS_SHOWN]
        ]
        return AuditVerification(
            intact=result.intact,
            entries=result.entries,
            sealed=result.sealed,
            checkpoints=result.checkpoints,
            pending=result.pending,
            forged=result.forged,
            witnessed=result.witnessed,
            first_problem=None if first is None else first.problem,
            first_problem_sequence=None if first is None else first.sequence,
            first_problem_entry=None if first is None or first.entry_id is None else strawberry.ID(str(first.entry_id)),
            problems=problems,
            problem_count=result.problem_count,
        )
