"""Errors the engine raises, and the stable codes that name them.

    AdjudicationError        anything the engine refuses to compute
     ├── InputError           the input is malformed; carries the field's path and a stable code
     └── InvariantError       a computed split broke conservation: a bug, never the caller's fault

Business outcomes (a plan that does not pay, a drug out of scope) are not errors: they are
reason codes on the result (see `results.ReasonCode`).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable codes for refused requests. Clients branch on these, never on messages.

    The engine raises the input codes; the service adds those about stored facts and state.
    """

    # malformed input
    MISSING_FIELD = "MISSING_FIELD"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    INVALID_FIELD = "INVALID_FIELD"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_RATIO = "INVALID_RATIO"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    DUPLICATE = "DUPLICATE"
    VISIT_MISMATCH = "VISIT_MISMATCH"
    SERVICE_DATE_IN_FUTURE = "SERVICE_DATE_IN_FUTURE"
    """The claim's service date is after today (Asia/Shanghai), beyond the service's tolerance."""
    SERVICE_DATE_BEFORE_RULES = "SERVICE_DATE_BEFORE_RULES"
    """The claim's service date is before the first formulary or plan version of its region."""
    # facts the request names that are not on record, or do not apply
    NOT_FOUND = "NOT_FOUND"
    UNKNOWN_DRUG = "UNKNOWN_DRUG"
    NO_FORMULARY = "NO_FORMULARY"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    # traceability codes
    TRACE_CODE_INVALID = "TRACE_CODE_INVALID"
    TRACE_CODE_ALREADY_SOLD = "TRACE_CODE_ALREADY_SOLD"
    # who may do what
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    # state
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    IN_PROGRESS = "IN_PROGRESS"
    ALREADY_REVERSED = "ALREADY_REVERSED"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    ANOMALY_DECIDED = "ANOMALY_DECIDED"
    """The anomaly was already confirmed or dismissed by a supervisor: a decision is final."""


class AdjudicationError(Exception):
    """Base of everything the engine raises on purpose."""


class InputError(AdjudicationError):
    """Malformed input: `field` is the path of the offending value, e.g. `plans[2].ratio.rate`."""

    def __init__(self, field: str, message: str, code: ErrorCode = ErrorCode.INVALID_FIELD) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.code = code


class InvariantError(AdjudicationError):
    """The engine computed a split that does not add up. Never caught: it means a bug."""
