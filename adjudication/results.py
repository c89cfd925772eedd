"""What adjudication returns: per payer and per line, every figure with its base and its reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from adjudication.claims import Accumulator
from adjudication.money import Fen
from adjudication.plans import PlanKind


class ReasonCode(StrEnum):
    """Stable codes explaining a figure. Clients and tests compare codes, never messages."""

    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    DEDUCTIBLE = "DEDUCTIBLE"
    CLAIM_CAP = "CLAIM_CAP"
    ANNUAL_CAP = "ANNUAL_CAP"
    NOT_IN_CATALOGUE = "NOT_IN_CATALOGUE"
    RESTRICTED_SCOPE = "RESTRICTED_SCOPE"
    NOT_DUAL_CHANNEL = "NOT_DUAL_CHANNEL"
    ABOVE_STANDARD = "ABOVE_STANDARD"
    DONATED = "DONATED"
    NOT_AUTHORIZED = "NOT_AUTHORIZED"
    NO_PATIENT_CONSENT = "NO_PATIENT_CONSENT"


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    message: str


Parts = tuple[Fen, Fen, Fen, Fen]
"""in_scope, self_pay_first, above_standard, out_of_scope (indexed by `formulary.Part`)."""


@dataclass(frozen=True, slots=True)
class PayerShare:
    """What one plan paid on the claim, the base it paid on and the deductible taken from it."""

    plan: str
    payer: str
    kind: PlanKind
    amount: Fen
    base: Fen
    deductible_applied: Fen
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class LineResult:
    """One line of the bill. `parts` cover the units left after donation; `total` is the whole
    line (quantity × unit price), so total = donated value + sum(parts) = paid_before + sum(paid)
    + patient. `patient_parts` is the patient's share by part (what no plan paid); the personal
    account pays `personal_account` of it, the rest is cash.
    """

    index: int
    drug: str
    quantity: int
    donated_units: int
    total: Fen
    parts: Parts
    paid: Mapping[str, Fen]
    patient: Fen
    reasons: tuple[Reason, ...]
    paid_before: Fen
    patient_parts: Parts
    personal_account: Fen


@dataclass(frozen=True, slots=True)
class Rebate:
    """What the manufacturer owes an insurer on one line: units × (list − settlement price).
    `amount` is None when the settlement price was not known (not computable): the insurer is
    still named, so that it sees which rebates it lost.
    """

    line: int
    drug: str
    insurer: str
    amount: Fen | None


@dataclass(frozen=True, slots=True)
class Adjudication:
    """The split of one claim: total = paid_before + the payers' amounts + patient.

    `accumulators` and `units_received` are the patient's totals after this claim (the next
    claim's input); `accumulator_changes` is exactly what this claim added, per plan, which is
    what a reversal subtracts. The personal account pays `personal_account_paid` of the
    patient's share and is left with `personal_account_balance`; the rest is `cash`.
    """

    total: Fen
    parts: Parts
    payers: tuple[PayerShare, ...]
    patient: Fen
    lines: tuple[LineResult, ...]
    rebates: tuple[Rebate, ...]
    accumulators: Mapping[str, Accumulator]
    accumulator_changes: Mapping[str, Accumulator]
    units_received: Mapping[str, int]
    paid_before: Fen
    personal_account_paid: Fen
    personal_account_balance: Fen

    @property
    def cash(self) -> Fen:
        """What the patient pays out of pocket: their share less what the personal account paid."""
        return self.patient - self.personal_account_paid


def covered(result: Adjudication) -> bool:
    """Whether any plan covers the person on this claim. A plan that refused the person (its
    first reason NOT_ELIGIBLE: criteria unmet, or no terms for the institution's level) does not;
    one that accepted the person covers them even when it pays nothing (deductible, caps, drugs
    outside its catalogue), since that is an explained split. With no plan covering, there is
    nothing to settle: the person is not insured for this care, which the caller refuses
    (NOT_ELIGIBLE) rather than settle all of it as the patient's.
    """
    return any(not share.reasons or share.reasons[0].code is not ReasonCode.NOT_ELIGIBLE for share in result.payers)
