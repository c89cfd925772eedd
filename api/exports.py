"""CSV exports for supervisors, beside /graphql and authorized by the same bearer token.

    GET /exports/anomalies.csv?region=&institution=&drug=&kind=&status=&from=YYYY-MM-DD&to=YYYY-MM-DD
    GET /exports/anomaly-steps.csv?(the same parameters)
    GET /exports/trace-code.csv?code=CODE
    GET /exports/risk.csv?institution=CODE&start=YYYY-MM-DD&end=YYYY-MM-DD

Anomalies and a code's events stream out as they are read, `supervision.PAGE` rows at a time: a
large export never sits in memory. A risk summary is a handful of rows (one per anomaly kind),
counted by the database and written at once. What a caller sees is what the same GraphQL query
would show it; dates are days in Asia/Shanghai.

Every file is UTF-8 and begins with a byte-order mark, so that spreadsheet software reads its
Chinese as Chinese, and no cell of it is read as a formula (`cell`). A parameter that is unknown,
repeated, missing or malformed is refused before anything is read: HTTP 400 with the body
`{"errors": [{"message", "extensions": {"code", "field"}}]}` and a stable code (`ErrorCode`).

And, for the supervisors' witnesses of the audit log (supervisors and administrators):

    GET /audit/checkpoints?after=SEQUENCE     signed checkpoints after SEQUENCE, as JSON lines
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from adjudication import ErrorCode
from adjudication.tracecodes import AnomalyKind
from api.auth import INSTITUTION_ROLES, Principal, Role
from api.errors import ServiceError
from api.graphql.context import Context
from api.services import audit, audit_witness, supervision

Exported = TypeVar("Exported")


@dataclass(frozen=True, slots=True)
class Columns(Generic[Exported]):
    """A file's header, and how each of its rows is read from what the service returns."""

    names: tuple[str, ...]
    values: Callable[[Exported], Sequence[object]]


def _anomaly_values(anomaly: supervision.AnomalyView) -> tuple[object, ...]:
    explanations = anomaly.explanations
    explained = explanations[-1] if explanations else None
    decided = anomaly.decision
    return (
        anomaly.id,
        anomaly.kind,
        anomaly.severity,
        anomaly.status,
        anomaly.code,
        anomaly.institution,
        anomaly.region,
        anomaly.drug,
        anomaly.settlement_id,
        anomaly.detected_at,
        anomaly.detected_by,
        len(explanations),
        None if explained is None else explained.note,
        None if explained is None else explained.organisation,
        None if explained is None else explained.person,
        None if explained is None else explained.at,
        None if decided is None else decided.kind,
        None if decided is None else decided.note,
        None if decided is None else decided.organisation,
        None if decided is None else decided.person,
        None if decided is None else decided.at,
    )


ANOMALY_COLUMNS: Columns[supervision.AnomalyView] = Columns(
    (
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
        "explanations",
        "explanation",
        "explained_by_organisation",
        "explained_by",
        "explained_at",
        "decision",
        "reason",
        "decided_by_organisation",
        "decided_by",
        "decided_at",
    ),
    _anomaly_values,
)
"""One row per anomaly: where it stands, the latest of its institution's explanations (and how
many it gave) and the supervisor's decision with its reason. Every step is in ANOMALY_STEP_COLUMNS."""


@dataclass(frozen=True, slots=True)
class StepRow:
    """One step in handling an anomaly, beside what identifies the anomaly."""

    anomaly: supervision.AnomalyView
    step: supervision.AnomalyStepView


ANOMALY_STEP_COLUMNS: Columns[StepRow] = Columns(
    (
        "anomaly_id",
        "kind",
        "severity",
        "status",
        "code",
        "institution_code",
        "region",
        "detected_at",
        "sequence",
        "step",
        "note",
        "role",
        "organisation",
        "person",
        "at",
    ),
    lambda row: (
        row.anomaly.id,
        row.anomaly.kind,
        row.anomaly.severity,
        row.anomaly.status,
        row.anomaly.code,
        row.anomaly.institution,
        row.anomaly.region,
        row.anomaly.detected_at,
        row.step.sequence,
        row.step.kind,
        row.step.note,
        row.step.role,
        row.step.organisation,
        row.step.person,
        row.step.at,
    ),
)
"""One row per step in handling an anomaly, in the order taken: the whole record, nothing
overwritten (an anomaly no one has handled has no row)."""
EVENT_COLUMNS: Columns[supervision.TraceEventView] = Columns(
    (
        "code",
        "drug_code",
        "kind",
        "institution_code",
        "settlement_id",
        "line_index",
        "units",
        "patient_index",
        "occurred_at",
    ),
    lambda event: (
        event.code,
        event.drug,
        event.kind,
        event.institution,
        event.settlement_id,
        event.line_index,
        event.units,
        event.patient_index,
        event.occurred_at,
    ),
)


@dataclass(frozen=True, slots=True)
class RiskRow:
    """One anomaly kind of an institution's risk summary (dismissed anomalies counted nowhere)."""

    institution: str
    settlements: int
    kind: str
    counts: supervision.AnomalyCounts


RISK_COLUMNS: Columns[RiskRow] = Columns(
    ("institution", "settlements", "kind", "anomalies", "open", "explained", "confirmed"),
    lambda row: (
        row.institution,
        row.settlements,
        row.kind,
        row.counts.total,
        row.counts.open,
        row.counts.explained,
        row.counts.confirmed,
    ),
)

BOM = "\ufeff"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""What a spreadsheet reads as the start of a formula (OWASP's CSV Injection page; its list now
includes the line feed beside the carriage return)."""


def cell(value: object) -> str | int:
    """One value as a cell a spreadsheet reads as data, never as a formula.

    OWASP's rule: a cell must not begin with =, +, -, @, tab, CR or LF; one that does is given a
    leading single quote, which spreadsheets take as "this is text" (the data itself is kept
    whole after it). Every text cell is also quoted, inner quotes doubled (`csv.QUOTE_NONNUMERIC`),
    so a separator or a quote inside a value cannot open a new cell that starts with one of
    those characters: the rule then holds for every cell a spreadsheet sees.

    Integers are exempt: they are typed `int` on our side (counts, units, line indexes), so a
    leading minus can only be a negative number's sign, never a formula, and prefixing it would
    turn the number into text. Anything else, including a number that arrives as text, is text.
    """
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


async def _csv(columns: Columns[Exported], first: Exported | None, rows: AsyncIterator[Exported]) -> AsyncIterator[str]:
    """The file: the byte-order mark once, the header, then the rows, handed on a page at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(columns.names)
    if first is None:
        yield buffer.getvalue()
        return
    writer.writerow([cell(value) for value in columns.values(first)])
    written = 1
    async for row in rows:
        writer.writerow([cell(value) for value in columns.values(row)])
        written += 1
        if written % supervision.PAGE == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


async def _response(columns: Columns[Exported], rows: AsyncIterator[Exported], name: str) -> StreamingResponse:
    """The export, streamed. Its first row is read before the answer starts, so that a query that
    fails outright is answered as a failure (500, logged), not as a 200 with a truncated file; a
    failure later on breaks the connection, which a client sees as an incomplete download.
    """
    first = await anext(rows, None)
    return StreamingResponse(
        _csv(columns, first, rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


# --- parameters --------------------------------------------------------------------------------

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _parameters(request: Request, allowed: Sequence[str], required: Sequence[str] = ()) -> dict[str, str]:
    """The query's parameters, each known and given at most once; an empty value is no value."""
    given: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise ServiceError(
                ErrorCode.UNKNOWN_FIELD, f"unknown parameter; this export takes {', '.join(allowed)}", name
            )
        if name in given:
            raise ServiceError(ErrorCode.DUPLICATE, "given more than once", name)
        given[name] = value.strip()
    for name in required:
        if not given.get(name):
            raise ServiceError(ErrorCode.MISSING_FIELD, "required", name)
    return {name: value for name, value in given.items() if value}


def _date(parameters: Mapping[str, str], name: str) -> date | None:
    value = parameters.get(name)
    if value is None:
        return None
    try:
        if not ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"{value!r} is not a date (YYYY-MM-DD)", name) from None


def _period(parameters: Mapping[str, str], start: str, end: str) -> tuple[date | None, date | None]:
    first, last = _date(parameters, start), _date(parameters, end)
    if first is not None and last is not None and first > last:
        raise ServiceError(ErrorCode.INVALID_FIELD, f"{start} {first} is after {end} {last}", start)
    return first, last


def _one_of(parameters: Mapping[str, str], name: str, values: Sequence[str]) -> str | None:
    """A value from a fixed list, in any letter case (GraphQL writes statuses in capitals)."""
    value = parameters.get(name)
    if value is None:
        return None
    for known in values:
        if value.casefold() == known.casefold():
            return known
    raise ServiceError(ErrorCode.INVALID_FIELD, f"{value!r} is not one of {', '.join(values)}", name)


def _refused(error: ServiceError, status_code: int = 400) -> JSONResponse:
    return JSONResponse(
        {
            "errors": [
                {
                    "message": f"{error.field}: {error.message}" if error.field else error.message,
                    "extensions": {"code": error.code.value, "field": error.field},
                }
            ]
        },
        status_code=status_code,
    )


async def _forbidden(context: Context, principal: Principal, what: str) -> Response:
    await audit.append_alone(
        context.runtime.sessions,
        audit.AuditRecord(
            audit.Actor.of(principal), f"export {what}", "denied", context.runtime.clock(), detail={"code": "FORBIDDEN"}
        ),
    )
    return JSONResponse({"errors": [{"message": "FORBIDDEN", "extensions": {"code": "FORBIDDEN"}}]}, status_code=403)


# --- the exports -------------------------------------------------------------------------------

ANOMALY_PARAMETERS = ("region", "institution", "drug", "kind", "status", "from", "to")


def _anomaly_filter(request: Request) -> supervision.AnomalyFilter:
    parameters = _parameters(request, ANOMALY_PARAMETERS)
    detected_from, detected_to = _period(parameters, "from", "to")
    return supervision.AnomalyFilter(
        region=parameters.get("region"),
        institution=parameters.get("institution"),
        drug=parameters.get("drug"),
        kind=_one_of(parameters, "kind", [kind.value for kind in AnomalyKind]),
        status=_one_of(parameters, "status", supervision.ANOMALY_STATUSES),
        detected_from=detected_from,
        detected_to=detected_to,
    )


async def anomalies(request: Request, context: Context, principal: Principal) -> Response:
    if principal.role not in INSTITUTION_ROLES and principal.role is not Role.SUPERVISOR:
        return await _forbidden(context, principal, "anomalies")
    try:
        where = _anomaly_filter(request)
    except ServiceError as error:
        return _refused(error)
    rows = supervision.stream_anomalies(context.runtime, principal, where)
    return await _response(ANOMALY_COLUMNS, rows, "anomalies.csv")


async def anomaly_steps(request: Request, context: Context, principal: Principal) -> Response:
    """Every step taken on the anomalies the same parameters select, anomaly by anomaly."""
    if principal.role not in INSTITUTION_ROLES and principal.role is not Role.SUPERVISOR:
        return await _forbidden(context, principal, "anomaly steps")
    try:
        where = _anomaly_filter(request)
    except ServiceError as error:
        return _refused(error)

    async def rows() -> AsyncIterator[StepRow]:
        async for anomaly in supervision.stream_anomalies(context.runtime, principal, where):
            for step in anomaly.steps:
                yield StepRow(anomaly, step)

    return await _response(ANOMALY_STEP_COLUMNS, rows(), "anomaly-steps.csv")


async def trace_code(request: Request, context: Context, principal: Principal) -> Response:
    if principal.role not in INSTITUTION_ROLES and principal.role is not Role.SUPERVISOR:
        return await _forbidden(context, principal, "trace code")
    try:
        code = _parameters(request, ("code",), required=("code",))["code"]
    except ServiceError as error:
        return _refused(error)
    rows = supervision.stream_code_history(context.runtime, principal, code)
    return await _response(EVENT_COLUMNS, rows, "trace-code.csv")


async def risk(request: Request, context: Context, principal: Principal) -> Response:
    """Not streamed: one row per anomaly kind of one institution, counted by the database. An
    institution the caller may not see reads as not found (404), like one that does not exist.
    """
    if principal.role is not Role.SUPERVISOR:
        return await _forbidden(context, principal, "risk")
    try:
        parameters = _parameters(request, ("institution", "start", "end"), required=("institution",))
        start, end = _period(parameters, "start", "end")
    except ServiceError as error:
        return _refused(error)
    institution = parameters["institution"]
    summary = await supervision.risk_summary(context.runtime, principal, institution, start, end)
    if summary is None:
        return _refused(ServiceError(ErrorCode.NOT_FOUND, f"no institution {institution}", "institution"), 404)

    async def rows() -> AsyncIterator[RiskRow]:
        for kind, counts in sorted(summary.by_kind.items()):
            yield RiskRow(summary.institution, summary.settlements, kind, counts)

    return await _response(RISK_COLUMNS, rows(), "risk.csv")


async def audit_checkpoints(request: Request, context: Context, principal: Principal) -> Response:
    """What a witness pulls. Not confidential (hashes, times, signatures) and polled every few
    seconds, so an allowed read is not audited: it would itself make the log grow forever.
    """
    if principal.role not in (Role.SUPERVISOR, Role.ADMIN):
        return await _forbidden(context, principal, "audit checkpoints")
    try:
        after = _parameters(request, ("after",)).get("after", "0")
    except ServiceError as error:
        return _refused(error)
    if not (after.isascii() and after.isdigit() and len(after) <= 18):
        return _refused(ServiceError(ErrorCode.INVALID_FIELD, "a sequence number", "after"))
    runtime = context.runtime
    return StreamingResponse(
        audit_witness.checkpoint_lines(runtime.sessions, runtime.cipher.keyring, int(after)),
        media_type="application/x-ndjson",
    )
