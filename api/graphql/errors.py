"""Errors are data: every mutation returns a union of its result and these typed errors.

Each carries a stable `code`, the `field` it concerns (a path into the input, such as
`claim.lines[0].quantity`) and a message a person can act on; `retryable` says whether the same
request may simply be sent again.
"""

from __future__ import annotations

import uuid
from typing import Any

import strawberry
from strawberry.types.field import StrawberryField

from adjudication import ErrorCode
from api.errors import ServiceError
from api.http.observability import note

strawberry.enum(ErrorCode, name="ErrorCode")  # the engine's codes, as they are, are the GraphQL enum ErrorCode


@strawberry.interface
class Error:
    code: ErrorCode
    field: str | None
    message: str
    retryable: bool


@strawberry.type(description="The request is malformed; nothing was written.")
class InvalidInput(Error):
    pass


@strawberry.type(description="Your role may not do this; nothing was written and the attempt was audited.")
class Forbidden(Error):
    pass


@strawberry.type(description="The request names something that is not on record (or not visible to you).")
class NotFound(Error):
    pass


@strawberry.type(description="The person is covered by no plan in force on the service date.")
class NotEligible(Error):
    pass


@strawberry.type(description="This serial was already settled with a different request.")
class IdempotencyConflict(Error):
    settlement_id: strawberry.ID | None


@strawberry.type(description="A request with this serial is still being processed; retry shortly.")
class InProgress(Error):
    pass


@strawberry.type(description="The settlement (or the serial) was already reversed.")
class AlreadyReversed(Error):
    settlement_id: strawberry.ID | None


@strawberry.type(description="A traceability code was refused: malformed, for another product, miscounted, or sold.")
class TraceCodeRefused(Error):
    pass


@strawberry.type(description="A different version was already loaded under this effective date.")
class VersionConflict(Error):
    pass


@strawberry.type(
    description="The anomaly is already confirmed or dismissed (a decision is final); nothing was written."
)
class AnomalyDecided(Error):
    pass


_TYPES: dict[ErrorCode, type[Error]] = {
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.UNKNOWN_DRUG: NotFound,
    ErrorCode.NO_FORMULARY: NotFound,
    ErrorCode.NOT_ELIGIBLE: NotEligible,
    ErrorCode.IDEMPOTENCY_CONFLICT: IdempotencyConflict,
    ErrorCode.IN_PROGRESS: InProgress,
    ErrorCode.ALREADY_REVERSED: AlreadyReversed,
    ErrorCode.VERSION_CONFLICT: VersionConflict,
    ErrorCode.FORBIDDEN: Forbidden,
    ErrorCode.TRACE_CODE_INVALID: TraceCodeRefused,
    ErrorCode.TRACE_CODE_ALREADY_SOLD: TraceCodeRefused,
    ErrorCode.ANOMALY_DECIDED: AnomalyDecided,
}


def parse_id(value: strawberry.ID) -> uuid.UUID | None:
    """An id as given by a client: None when it is not one of ours (so: not found)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def error_from(error: ServiceError) -> Error:
    note(outcome=error.code.value)  # the request line's outcome: the typed error a mutation returns
    kind = _TYPES.get(error.code, InvalidInput)
    if issubclass(kind, IdempotencyConflict | AlreadyReversed):
        settlement_id = error.details.get("settlementId")
        return kind(
            code=error.code,
            field=error.field,
            message=error.message,
            retryable=error.retryable,
            settlement_id=None if settlement_id is None else strawberry.ID(settlement_id),
        )
    return kind(code=error.code, field=error.field, message=error.message, retryable=error.retryable)


class ServiceErrors(strawberry.ExceptionHandler[ServiceError]):
    """The one place a refusal becomes data: a ServiceError raised in a mutation's resolver is
    answered with the member of its result union that its code names (every mutation's union
    holds InvalidInput, the catch-all). A code whose type the union lacks is declined, and
    leaves as a coded field error (api/graphql/failures.py), as in a query.
    """

    error_type = InvalidInput

    def handle(self, exception: ServiceError, *, field: StrawberryField, info: Any) -> Error | None:
        members = getattr(field.type, "types", ())
        if _TYPES.get(exception.code, InvalidInput) not in members:
            return None
        return error_from(exception)
