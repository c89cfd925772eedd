"""Settlements as a settlement slip shows them: total, out of scope, above standard, B self-pay,
in scope, each fund's payment, the patient's cash; per fund and per line, with reasons.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import strawberry

from adjudication import ReasonCode as DomainReasonCode
from adjudication import Visit as DomainVisit
from api.graphql.confidential import ConfidentialAmount
from api.graphql.scalars import Yuan
from api.services.records import FundShareView, LineView, ReasonView, RebateView, SettlementView

Visit = strawberry.enum(DomainVisit, name="Visit")
ReasonCode = strawberry.enum(DomainReasonCode, name="ReasonCode")


@strawberry.enum
class SettlementStatus(StrEnum):
    SETTLED = "settled"
    REVERSED = "reversed"
    PRE_SETTLED = "pre_settled"


@strawberry.type
class Reason:
    code: ReasonCode
    message: str


@strawberry.type(description="What one plan paid, on what base, after which deductible, funded how.")
class FundShare:
    plan: str
    payer: str
    kind: str
    amount: Yuan
    base: Yuan
    deductible_applied: Yuan
    drawn_from_prepayment: Yuan = strawberry.field(description="Covered by the payer's prepayment pool here.")
    receivable: Yuan = strawberry.field(description="What the pool could not cover: owed to the institution.")
    reasons: list[Reason]


@strawberry.type
class LinePayment:
    plan: str
    amount: Yuan


@strawberry.type
class SettlementLine:
    index: int
    drug: str
    quantity: int
    donated_units: int
    unit_price: Yuan
    total: Yuan
    out_of_scope: Yuan
    above_standard: Yuan
    self_pay_first: Yuan = strawberry.field(description="The pay-first share (先行自付), e.g. category B.")
    in_scope: Yuan
    payments: list[LinePayment]
    patient_cash: Yuan
    reasons: list[Reason]
    trace_codes: list[str]


@strawberry.type(description="The explanation of benefits: the split of the whole claim, per fund and per line.")
class ExplanationOfBenefits:
    total: Yuan
    out_of_scope: Yuan
    above_standard: Yuan
    self_pay_first: Yuan
    in_scope: Yuan
    funds: list[FundShare]
    patient_cash: Yuan
    lines: list[SettlementLine]


@strawberry.enum(description="Whether a rebate could be derived when its claim settled.")
class RebateStatus(StrEnum):
    COMPUTED = "computed"
    NOT_COMPUTABLE = "not_computable"


@strawberry.type(description="What a manufacturer owes an insurer on one line (from its confidential price).")
class Rebate:
    line: int
    drug: str
    insurer: str
    status: RebateStatus = strawberry.field(
        description="NOT_COMPUTABLE: the insurer's settlement price could not be read when the claim settled "
        "(its key was destroyed); the claim settled on list prices all the same, and no amount was derived."
    )
    _view: strawberry.Private[RebateView]

    @strawberry.field(
        description="Clear for its insurer and price auditors, MASKED for everyone else; null when not computable. "
        "A rebate whose key was destroyed answers KEY_DESTROYED on this field alone."
    )
    def amount(self) -> ConfidentialAmount | None:
        if not self._view.computable:
            return None
        unreadable = self._view.unreadable
        if unreadable is not None:
            raise type(unreadable)(str(unreadable))
        return ConfidentialAmount.of(self._view.amount_fen)


def rebate_type(view: RebateView) -> Rebate:
    status = RebateStatus.COMPUTED if view.computable else RebateStatus.NOT_COMPUTABLE
    return Rebate(line=view.line, drug=view.drug, insurer=view.insurer, status=status, _view=view)


@strawberry.type
class Settlement:
    id: strawberry.ID
    institution: str
    serial: str
    person: str
    service_date: date
    year: int
    visit: Visit
    diagnoses: list[str]
    status: SettlementStatus
    settled_at: datetime | None
    reversed_at: datetime | None
    reversal_reason: str | None
    explanation: ExplanationOfBenefits
    rebates: list[Rebate] = strawberry.field(
        description="Manufacturers' rebates on this claim: amounts in clear for their insurer and price auditors."
    )


def _reasons(view_reasons: tuple[ReasonView, ...]) -> list[Reason]:
    return [Reason(code=DomainReasonCode(reason.code), message=reason.message) for reason in view_reasons]


def _fund(fund: FundShareView) -> FundShare:
    return FundShare(
        plan=fund.plan,
        payer=fund.payer,
        kind=fund.kind,
        amount=fund.amount_fen,
        base=fund.base_fen,
        deductible_applied=fund.deductible_applied_fen,
        drawn_from_prepayment=fund.drawn_fen,
        receivable=fund.receivable_fen,
        reasons=_reasons(fund.reasons),
    )


def _line(line: LineView) -> SettlementLine:
    return SettlementLine(
        index=line.index,
        drug=line.drug,
        quantity=line.quantity,
        donated_units=line.donated_units,
        unit_price=line.unit_price_fen,
        total=line.total_fen,
        out_of_scope=line.out_of_scope_fen,
        above_standard=line.above_standard_fen,
        self_pay_first=line.self_pay_first_fen,
        in_scope=line.in_scope_fen,
        payments=[LinePayment(plan=p.plan, amount=p.amount_fen) for p in line.payments],
        patient_cash=line.patient_fen,
        reasons=_reasons(line.reasons),
        trace_codes=list(line.trace_codes),
    )


def settlement_type(view: SettlementView, *, pre_settled: bool = False) -> Settlement:
    return Settlement(
        id=strawberry.ID(str(view.id)),
        institution=view.institution,
        serial=view.serial,
        person=view.person,
        service_date=view.service_date,
        year=view.year,
        visit=DomainVisit(view.visit),
        diagnoses=list(view.diagnoses),
        status=SettlementStatus.PRE_SETTLED if pre_settled else SettlementStatus(view.status),
        settled_at=None if pre_settled else view.settled_at,
        reversed_at=view.reversed_at,
        reversal_reason=view.reversal_reason,
        rebates=[rebate_type(rebate) for rebate in view.rebates],
        explanation=ExplanationOfBenefits(
            total=view.total_fen,
            out_of_scope=view.out_of_scope_fen,
            above_standard=view.above_standard_fen,
            self_pay_first=view.self_pay_first_fen,
            in_scope=view.in_scope_fen,
            funds=[_fund(fund) for fund in view.funds],
            patient_cash=view.patient_fen,
            lines=[_line(line) for line in view.lines],
        ),
    )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class SettlementEdge:
    cursor: str
    node: Settlement


@strawberry.type
class SettlementConnection:
    edges: list[SettlementEdge]
    page_info: PageInfo


@strawberry.input
class SettlementFilter:
    institution: str | None = None
    payer: str | None = None
    service_from: date | None = None
    service_to: date | None = None
    drug: str | None = None
    status: SettlementStatus | None = None
    region: str | None = strawberry.field(default=None, description="Treated in this region (就医地).")
    insured_region: str | None = strawberry.field(
        default=None, description="Of a patient insured in this region (参保地), wherever treated."
    )
    cross_region: bool | None = strawberry.field(
        default=None,
        description="true: treated outside the patient's insuring region (异地就医); false: within it.",
    )


@strawberry.type(description="A reversal: the settlement as reversed, and the later settlements that relied on it.")
class Reversal:
    settlement: Settlement | None = strawberry.field(
        description="None when the serial had not settled: it is voided so that a late copy cannot settle."
    )
    voided_serial: bool
    later_settlements: list[Settlement] = strawberry.field(
        description="Later settlements of the same person and year, settled on accumulators this one fed; "
        "they are not re-adjudicated and are listed for review."
    )
    later_settlements_elsewhere: int = strawberry.field(
        description="Such later settlements at institutions you may not see (supervisors review them)."
    )
