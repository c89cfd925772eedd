"""CSV exports for supervisors, beside /graphql and authorized by the same bearer token.

    GET /exports/anomalies.csv?region=&institution=&drug=&kind=&status=&from=YYYY-MM-DD&to=YYYY-MM-DD
    GET /exports/trace-code.csv?code=CODE
    GET /exports/risk.csv?institution=CODE&start=YYYY-MM-DD&end=YYYY-MM-DD

and, for the supervisors' witnesses of the audit log (supervisors and administrators):

    GET /audit/checkpoints?after=SEQUENCE     signed checkpoints after SEQUENCE, as JSON lines

Rows stream out a page at a time: a large export never sits in memory. What a caller sees is
what the same GraphQL query would show it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from api.auth import INSTITUTION_ROLES, Principal, Role
from api.graphql.context import Context
from api.services import audit, audit_witness, supervision

ANOMALY_COLUMNS = [
    "id",
    "kind",
    "severity",
    "status",
    "code",
    "institution_code",
    "region",
    "drug_code",
    "settlement_id",
    "detected_at",
    "detected_by",
    "handled_by",
    "handled_at",
    "note",
]
EVENT_COLUMNS = [
    "code",
    "drug_code",
    "kind",
    "institution_code",
    "settlement_id",
    "line_index",
    "units",
    "patient_index",
    "occurred_at",
]


def _line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(["" if value is None else value for value in values])
    return buffer.getvalue()


async def _rows(header: list[str], rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    yield _line(header)
    async for row in rows:
        yield _line(row[column] for column in header)


def _date(request: Request, name: str) -> date | None:
    value = request.query_params.get(name)
    return None if value is None else date.fromisoformat(value)


async def _refuse(context: Context, principal: Principal, what: str) -> Response:
    await audit.append_alone(
        context.runtime.sessions,
        audit.AuditRecord(
            audit.Actor.of(principal), f"export {what}", "denied", context.runtime.clock(), detail={"code": "FORBIDDEN"}
        ),
    )
    return JSONResponse({"errors": [{"message": "FORBIDDEN", "extensions": {"code": "FORBIDDEN"}}]}, status_code=403)


def _csv(rows: AsyncIterator[str], name: str) -> StreamingResponse:
    return StreamingResponse(
        rows, media_type="text/csv; charset=utf-8", headers={"content-disposition": f'attachment; filename="{name}"'}
    )


async def anomalies(request: Request, context: Context, principal: Principal) -> Response:
    if principal.role not in INSTITUTION_ROLES and principal.role is not Role.SUPERVISOR:
        return await _refuse(context, principal, "anomalies")
    try:
        where = supervision.AnomalyFilter(
            region=request.query_params.get("region"),
            institution=request.query_params.get("institution"),
            drug=request.query_params.get("drug"),
            kind=request.query_params.get("kind"),
            status=request.query_params.get("status"),
            detected_from=_date(request, "from"),
            detected_to=_date(request, "to"),
        )
    except ValueError:
        return JSONResponse({"errors": [{"message": "dates are YYYY-MM-DD"}]}, status_code=400)
    return _csv(
        _rows(ANOMALY_COLUMNS, supervision.stream_anomalies(context.runtime, principal, where)), "anomalies.csv"
    )


async def trace_code(request: Request, context: Context, principal: Principal) -> Response:
    if principal.role not in INSTITUTION_ROLES and principal.role is not Role.SUPERVISOR:
        return await _refuse(context, principal, "trace code")
    events = await supervision.code_history(context.runtime, principal, request.query_params.get("code", ""))

    async def rows() -> AsyncIterator[dict[str, Any]]:
        for event in events:
            yield event

    return _csv(_rows(EVENT_COLUMNS, rows()), "trace-code.csv")


async def risk(request: Request, context: Context, principal: Principal) -> Response:
    if principal.role is not Role.SUPERVISOR:
        return await _refuse(context, principal, "risk")
    try:
        start, end = _date(request, "start"), _date(request, "end")
    except ValueError:
        return JSONResponse({"errors": [{"message": "dates are YYYY-MM-DD"}]}, status_code=400)
    summary = await supervision.risk_summary(
        context.runtime, principal, request.query_params.get("institution", ""), start or date.min, end or date.max
    )

    async def rows() -> AsyncIterator[dict[str, Any]]:
        if summary is not None:
            for kind, count in sorted(summary.by_kind.items()):
                yield {
                    "institution": summary.institution,
                    "settlements": summary.settlements,
                    "kind": kind,
                    "anomalies": count,
                }

    return _csv(_rows(["institution", "settlements", "kind", "anomalies"], rows()), "risk.csv")


async def audit_checkpoints(request: Request, context: Context, principal: Principal) -> Response:
    """What a witness pulls. Not confidential (hashes, times, signatures) and polled every few
    seconds, so an allowed read is not audited: it would itself make the log grow forever.
    """
    if principal.role not in (Role.SUPERVISOR, Role.ADMIN):
        return await _refuse(context, principal, "audit checkpoints")
    after = request.query_params.get("after", "0")
    if not (after.isascii() and after.isdigit() and len(after) <= 18):
        return JSONResponse(
            {"errors": [{"message": "after is a sequence number", "extensions": {"code": "INVALID_FIELD"}}]},
            status_code=400,
        )
    runtime = context.runtime
    return StreamingResponse(
        audit_witness.checkpoint_lines(runtime.sessions, runtime.cipher.keyring, int(after)),
        media_type="application/x-ndjson",
    )
