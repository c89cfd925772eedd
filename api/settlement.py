"""A settlement: its one shape, from the engine's result to the caller.

`Settlement.decided` builds it from the engine's `Adjudication` and the claim's identity;
`funded` adds how each payer's share is funded from its pool (`adjudication.funding`); the
repository (api/db/settlements.py) writes exactly that and reads it back as the same value; the
GraphQL layer converts it once (api/graphql/settlements/types.py). So a pre-settlement, a fresh
settlement and one read back a year later show the same figures, the same way.

What a settlement keeps of the engine's payer shares: every plan that accepted the person, with
its base, deductible and reasons even when it paid nothing (that is the explanation of
benefits), and any plan that computed a base. A plan that refused the person outright
(NOT_ELIGIBLE) and had no base says nothing about this claim, and is not kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType

from adjudication import (
    Accumulator,
    Adjudication,
    Claim,
    Funding,
    Part,
    PayerShare,
    PlanKind,
    Reason,
    ReasonCode,
    Visit,
)

_NO_CHANGES: Mapping[str, Accumulator] = MappingProxyType({})


class SettlementStatus(StrEnum):
    SETTLED = "settled"
    REVERSED = "reversed"
    PRE_SETTLED = "pre_settled"
    """Computed as it would settle now; never stored."""


@dataclass(frozen=True, slots=True)
class FundShare:
    """One plan's share: what it paid, on what base, after which deductible, funded how."""

    plan: str
    plan_version_id: uuid.UUID
    payer: str
    kind: PlanKind
    amount_fen: int
    base_fen: int
    deductible_applied_fen: int
    drawn_fen: int
    receivable_fen: int
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class LinePayment:
    plan: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class SettlementLine:
    index: int
    drug: str
    quantity: int
    unit_price_fen: int
    donated_units: int
    total_fen: int
    in_scope_fen: int
    self_pay_first_fen: int
    above_standard_fen: int
    out_of_scope_fen: int
    patient_fen: int
    payments: tuple[LinePayment, ...]
    """The plans that paid on this line (amounts above zero), in waterfall order."""
    reasons: tuple[Reason, ...]
    trace_codes: tuple[str, ...]
    split: bool
    prescription_id: str | None


@dataclass(frozen=True, slots=True)
class Rebate:
    """What a manufacturer owes an insurer on one line, derived from the insurer's confidential
    price. Not `computable` when that price could not be read as the claim settled (its key
    destroyed): there is no amount. Otherwise `amount_fen` is the amount, or None where the
    reader may not read that insurer's prices, or where it is `unreadable` now (its key
    destroyed since: an error of this figure alone).
    """

    line: int
    drug: str
    insurer: str
    computable: bool
    amount_fen: int | None
    unreadable: Exception | None = None

    def masked(self) -> Rebate:
        return replace(self, amount_fen=None)


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settlement slip: the claim's identity, its status, and its explanation of benefits
    (the split of the whole bill and of each line, with every plan's base and reasons).
    """

    id: uuid.UUID
    institution: str
    region: str
    """The treating institution's region (就医地)."""
    insured_region: str
    """The patient's insuring region (参保地), whose plans paid: its supervisors see the settlement too."""
    serial: str
    request_hash: str
    person: str
    person_id: uuid.UUID
    service_date: date
    year: int
    visit: Visit
    diagnoses: tuple[str, ...]
    drg_group: str | None
    prescribing_hospital: str | None
    formulary_version_id: uuid.UUID
    status: SettlementStatus
    settled_at: datetime | None
    reversed_at: datetime | None
    reversal_reason: str | None
    total_fen: int
    in_scope_fen: int
    self_pay_first_fen: int
    above_standard_fen: int
    out_of_scope_fen: int
    patient_fen: int
    funds: tuple[FundShare, ...]
    lines: tuple[SettlementLine, ...]
    changes: Mapping[str, Accumulator] = field(default_factory=lambda: _NO_CHANGES)
    """What it added to the person's accumulators, by plan: what a reversal subtracts."""
    rebates: tuple[Rebate, ...] = ()

    @classmethod
    def decided(
        cls,
        *,
        id: uuid.UUID,
        institution: str,
        region: str,
        insured_region: str,
        person: str,
        person_id: uuid.UUID,
        request_hash: str,
        claim: Claim,
        result: Adjudication,
        plan_versions: Mapping[str, uuid.UUID],
        formulary_version_id: uuid.UUID,
        prescribing_hospital: str | None,
        settled_at: datetime | None,
    ) -> Settlement:
        """The settlement the engine's `result` makes of `claim`, every share still unfunded
        (all receivable, until `funded`). Without `settled_at` it is a pre-settlement.
        """
        funds = tuple(
            FundShare(
                share.plan,
                plan_versions[share.plan],
                share.payer,
                share.kind,
                share.amount,
                share.base,
                share.deductible_applied,
                0,
                share.amount,
                share.reasons,
            )
            for share in result.payers
            if not _refused(share) or share.base or share.amount
        )
        position = {fund.plan: index for index, fund in enumerate(funds)}
        lines = tuple(
            SettlementLine(
                index=line.index,
                drug=line.drug,
                quantity=line.quantity,
                unit_price_fen=asked.unit_price,
                donated_units=line.donated_units,
                total_fen=line.total,
                in_scope_fen=line.parts[Part.IN_SCOPE],
                self_pay_first_fen=line.parts[Part.SELF_PAY_FIRST],
                above_standard_fen=line.parts[Part.ABOVE_STANDARD],
                out_of_scope_fen=line.parts[Part.OUT_OF_SCOPE],
                patient_fen=line.patient,
                payments=tuple(
                    LinePayment(plan, amount)
                    for plan, amount in sorted(line.paid.items(), key=lambda paid: position.get(paid[0], -1))
                    if amount
                ),
                reasons=line.reasons,
                trace_codes=asked.trace_codes,
                split=asked.split,
                prescription_id=asked.prescription_id,
            )
            for line, asked in zip(result.lines, claim.lines, strict=True)
        )
        return cls(
            id=id,
            institution=institution,
            region=region,
            insured_region=insured_region,
            serial=claim.serial,
            request_hash=request_hash,
            person=person,
            person_id=person_id,
            service_date=claim.service_date,
            year=claim.service_date.year,
            visit=claim.visit,
            diagnoses=claim.diagnoses,
            drg_group=claim.drg_group,
            prescribing_hospital=prescribing_hospital,
            formulary_version_id=formulary_version_id,
            status=SettlementStatus.SETTLED if settled_at else SettlementStatus.PRE_SETTLED,
            settled_at=settled_at,
            reversed_at=None,
            reversal_reason=None,
            total_fen=result.total,
            in_scope_fen=result.parts[Part.IN_SCOPE],
            self_pay_first_fen=result.parts[Part.SELF_PAY_FIRST],
            above_standard_fen=result.parts[Part.ABOVE_STANDARD],
            out_of_scope_fen=result.parts[Part.OUT_OF_SCOPE],
            patient_fen=result.patient,
            funds=funds,
            lines=lines,
            changes=MappingProxyType(dict(result.accumulator_changes)),
            rebates=tuple(
                Rebate(rebate.line, rebate.drug, rebate.insurer, rebate.amount is not None, rebate.amount)
                for rebate in result.rebates
            ),
        )

    @property
    def shares(self) -> tuple[PayerShare, ...]:
        """The kept shares as the money rules take them (`adjudication.funding`)."""
        return tuple(
            PayerShare(f.plan, f.payer, f.kind, f.amount_fen, f.base_fen, f.deductible_applied_fen, f.reasons)
            for f in self.funds
        )

    def funded(self, funding: Funding) -> Settlement:
        """Each share funded: what its payer's pool covered, and the rest owed (a receivable)."""
        plans = funding.over_plans(self.shares)
        funds = tuple(
            replace(fund, drawn_fen=plan.drawn_fen, receivable_fen=plan.receivable_fen)
            for fund, plan in zip(self.funds, plans, strict=True)
        )
        return replace(self, funds=funds)

    def masked(self) -> Settlement:
        """As shown to a reader who may read no insurer's prices (a cashier)."""
        return replace(self, rebates=tuple(rebate.masked() for rebate in self.rebates))

    def drawn_by_payer(self) -> dict[str, int]:
        drawn: dict[str, int] = {}
        for fund in self.funds:
            if fund.drawn_fen:
                drawn[fund.payer] = drawn.get(fund.payer, 0) + fund.drawn_fen
        return drawn

    def units_by_drug(self) -> dict[str, int]:
        units: dict[str, int] = {}
        for line in self.lines:
            units[line.drug] = units.get(line.drug, 0) + line.quantity
        return units


def _refused(share: PayerShare) -> bool:
    """The plan refused the person (criteria unmet, no terms for the institution's level)."""
    return bool(share.reasons) and share.reasons[0].code is ReasonCode.NOT_ELIGIBLE
