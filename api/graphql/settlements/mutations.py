"""Pre-settlement, settlement and reversal at the cashier window: inputs, result unions, resolvers."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from adjudication import ErrorCode, Visit
from api.errors import ServiceError
from api.graphql import typed
from api.graphql.context import Info
from api.graphql.errors import (
    AlreadyReversed,
    Forbidden,
    IdempotencyConflict,
    InProgress,
    InvalidInput,
    NotEligible,
    NotFound,
    TraceCodeRefused,
    parse_id,
)
from api.graphql.settlements.types import Reversal, Settlement, settlement_type
from api.services import settlement as settlements
from api.services.requests import ClaimLimits, ClaimRequest, LineInput, claim_request


@strawberry.input
class ClaimLineInput:
    drug: str = strawberry.field(description="National medical-insurance drug code.")
    quantity: int = strawberry.field(description="Units dispensed (packages, or smallest units when split).")
    unit_price: str = strawberry.field(description='List price per unit in yuan, e.g. "1600.00".')
    trace_codes: list[str] = strawberry.field(default_factory=list)
    prescription_id: str | None = None
    split: bool = False


@strawberry.input
class ClaimInput:
    institution: str
    serial: str = strawberry.field(description="The institution's own serial: (institution, serial) is idempotent.")
    person: str = strawberry.field(description="The insured person's insurance number (人员编号).")
    service_date: date
    visit: Visit
    diagnoses: list[str]
    lines: list[ClaimLineInput]
    drg_group: str | None = None
    prescribing_hospital: str | None = None


@strawberry.input
class ReversalInput:
    id: strawberry.ID | None = None
    institution: str | None = None
    serial: str | None = None
    reason: str


PreSettleResult = Annotated[
    Settlement | InvalidInput | NotFound | NotEligible | TraceCodeRefused | Forbidden,
    strawberry.union("PreSettleResult"),
]
SettleResult = Annotated[
    Settlement
    | InvalidInput
    | NotFound
    | NotEligible
    | TraceCodeRefused
    | IdempotencyConflict
    | InProgress
    | AlreadyReversed
    | Forbidden,
    strawberry.union("SettleResult"),
]
ReverseResult = Annotated[
    Reversal | InvalidInput | NotFound | InProgress | AlreadyReversed | Forbidden, strawberry.union("ReverseResult")
]


def _request(info: Info, claim: ClaimInput) -> ClaimRequest:
    settings = info.context.settings
    return claim_request(
        institution=claim.institution,
        serial=claim.serial,
        person=claim.person,
        service_date=claim.service_date,
        visit=claim.visit,
        diagnoses=claim.diagnoses,
        lines=[
            LineInput(line.drug, line.quantity, line.unit_price, line.trace_codes, line.prescription_id, line.split)
            for line in claim.lines
        ],
        drg_group=claim.drg_group,
        prescribing_hospital=claim.prescribing_hospital,
        limits=ClaimLimits(settings.max_claim_lines, settings.max_claim_diagnoses),
    )


@strawberry.type
class SettlementMutations:
    """Each mutation converts its input, calls one service and converts the settlement back; a
    refusal (ServiceError) becomes the result union's typed error in one place
    (api/graphql/errors.py: ServiceErrors).
    """

    @typed.mutation(description="Pre-settlement (预结算): the full split as it would settle now; nothing is written.")
    async def pre_settle(self, info: Info, claim: ClaimInput) -> PreSettleResult:
        context = info.context
        return settlement_type(await settlements.pre_settle(context.runtime, context.principal, _request(info, claim)))

    @typed.mutation(description="Settle a claim in real time. Safe to retry with the same serial and body.")
    async def settle(self, info: Info, claim: ClaimInput) -> SettleResult:
        context = info.context
        return settlement_type(await settlements.settle(context.runtime, context.principal, _request(info, claim)))

    @typed.mutation(description="Reverse a settlement in full (冲正/退费), by id or by the institution's serial.")
    async def reverse_settlement(self, info: Info, input: ReversalInput) -> ReverseResult:
        context = info.context
        settlement_id = None
        if input.id is not None:
            settlement_id = parse_id(input.id)
            if settlement_id is None:
                raise ServiceError(ErrorCode.NOT_FOUND, f"no settlement {input.id}", "input.id")
        target = settlements.ReversalTarget(settlement_id, input.institution, input.serial)
        reversal = await settlements.reverse(context.runtime, context.principal, target, input.reason)
        return Reversal(
            settlement=None if reversal.settlement is None else settlement_type(reversal.settlement),
            voided_serial=reversal.voided_serial,
            later_settlements=[settlement_type(later) for later in reversal.later_settlements],
            later_settlements_elsewhere=reversal.later_elsewhere,
        )
