"""Settlements as a settlement slip shows them: total, out of scope, above standard, B self-pay,
in scope, each fund's payment, the patient's cash; per fund and per line, with reasons.

`settlement_type` is the one conversion from the service's settlement (`api.settlement`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import strawberry

from adjudication import Reason as EngineReason
from adjudication import ReasonCode, Visit
from api.graphql import typed
from api.graphql.confidential import ConfidentialAmount
from api.graphql.scalars import Yuan
from api.settlement import FundShare as FundShareValue
from api.settlement import Rebate as RebateValue
from api.settlement import Settlement as SettlementValue
from api.settlement import SettlementLine as LineValue
from api.settlement import SettlementStatus

strawberry.enum(Visit, name="Visit")
strawberry.enum(ReasonCode, name="ReasonCode")
strawberry.enum(SettlementStatus, name="SettlementStatus")


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
    value: strawberry.Private[RebateValue]

    @typed.field(
        description="Clear for its insurer and price auditors, MASKED for everyone else; null when not computable. "
        "A rebate whose key was destroyed answers KEY_DESTROYED on this field alone."
    )
    def amount(self) -> ConfidentialAmount | None:
        if not self.value.computable:
            return None
        unreadable = self.value.unreadable
        if unreadable is not None:
            raise type(unreadable)(str(unreadable))
        return ConfidentialAmount.of(self.value.amount_fen)


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


def settlement_type(settlement: SettlementValue) -> Settlement:
    """The one conversion of a settlement for the API."""
    s = settlement
    return Settlement(
        id=strawberry.ID(str(s.id)),
        institution=s.institution,
        serial=s.serial,
        person=s.person,
        service_date=s.service_date,
        year=s.year,
        visit=s.visit,
        diagnoses=list(s.diagnoses),
        status=s.status,
        settled_at=s.settled_at,
        reversed_at=s.reversed_at,
        reversal_reason=s.reversal_reason,
        rebates=[_rebate(rebate) for rebate in s.rebates],
        explanation=ExplanationOfBenefits(
            total=Yuan(s.total_fen),
            out_of_scope=Yuan(s.out_of_scope_fen),
            above_standard=Yuan(s.above_standard_fen),
            self_pay_first=Yuan(s.self_pay_first_fen),
            in_scope=Yuan(s.in_scope_fen),
            funds=[_fund(fund) for fund in s.funds],
            patient_cash=Yuan(s.patient_fen),
            lines=[_line(line) for line in s.lines],
        ),
    )


def _reasons(reasons: tuple[EngineReason, ...]) -> list[Reason]:
    return [Reason(code=reason.code, message=reason.message) for reason in reasons]


def _fund(fund: FundShareValue) -> FundShare:
    return FundShare(
        plan=fund.plan,
        payer=fund.payer,
        kind=fund.kind.value,
        amount=Yuan(fund.amount_fen),
        base=Yuan(fund.base_fen),
        deductible_applied=Yuan(fund.deductible_applied_fen),
        drawn_from_prepayment=Yuan(fund.drawn_fen),
        receivable=Yuan(fund.receivable_fen),
        reasons=_reasons(fund.reasons),
    )


def _line(line: LineValue) -> SettlementLine:
    return SettlementLine(
        index=line.index,
        drug=line.drug,
        quantity=line.quantity,
        donated_units=line.donated_units,
        unit_price=Yuan(line.unit_price_fen),
        total=Yuan(line.total_fen),
        out_of_scope=Yuan(line.out_of_scope_fen),
        above_standard=Yuan(line.above_standard_fen),
        self_pay_first=Yuan(line.self_pay_first_fen),
        in_scope=Yuan(line.in_scope_fen),
        payments=[LinePayment(plan=p.plan, amount=Yuan(p.amount_fen)) for p in line.payments],
        patient_cash=Yuan(line.patient_fen),
        reasons=_reasons(line.reasons),
        trace_codes=list(line.trace_codes),
    )


def _rebate(rebate: RebateValue) -> Rebate:
    status = RebateStatus.COMPUTED if rebate.computable else RebateStatus.NOT_COMPUTABLE
    return Rebate(line=rebate.line, drug=rebate.drug, insurer=rebate.insurer, status=status, value=rebate)


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
