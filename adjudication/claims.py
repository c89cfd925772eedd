"""The facts of one claim: who was treated, where, when, and which drugs were dispensed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from types import MappingProxyType

from adjudication.errors import ErrorCode, InputError
from adjudication.money import Fen


class InsuranceType(StrEnum):
    EMPLOYEE = "employee"  # 职工基本医疗保险
    RESIDENT = "resident"  # 城乡居民基本医疗保险


class InstitutionKind(StrEnum):
    HOSPITAL = "hospital"
    PHARMACY = "pharmacy"  # designated retail pharmacy, dual channel (双通道)


class Visit(StrEnum):
    """The kind of visit a claim settles. Plans and restricted scopes name the visits they cover."""

    OUTPATIENT = "outpatient"  # ordinary outpatient care (门诊统筹 pays it)
    OUTPATIENT_CHRONIC = "outpatient_chronic"  # 门诊慢特病: settled under a registered chronic/special disease
    INPATIENT = "inpatient"
    PHARMACY = "pharmacy"


_NO_ACCUMULATORS: Mapping[str, Accumulator] = MappingProxyType({})
_NO_UNITS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Institution:
    """A designated institution. A pharmacy states a level too (1 where it has none)."""

    code: str
    kind: InstitutionKind
    level: int
    region: str


@dataclass(frozen=True, slots=True)
class Accumulator:
    """One person's running totals under one plan (by its stable code) in one calendar year.

    `claims` counts the year's claims on which the plan was eligible and had a base above zero;
    it selects a per-claim deductible's `subsequent` amount.
    """

    deductible_met: Fen = 0
    base_spent: Fen = 0
    paid: Fen = 0
    claims: int = 0

    def __add__(self, other: Accumulator) -> Accumulator:
        return Accumulator(
            self.deductible_met + other.deductible_met,
            self.base_spent + other.base_spent,
            self.paid + other.paid,
            self.claims + other.claims,
        )

    def __sub__(self, other: Accumulator) -> Accumulator:
        return Accumulator(
            self.deductible_met - other.deductible_met,
            self.base_spent - other.base_spent,
            self.paid - other.paid,
            self.claims - other.claims,
        )


ZERO_ACCUMULATOR = Accumulator()


@dataclass(frozen=True, slots=True)
class Patient:
    """The insured person as the plans see them, with this year's accumulators.

    `consents` are the payers the patient authorised to settle directly (签约授权);
    `personal_account` is the balance of their personal account (个人账户), None when they have none.
    """

    insurance_type: InsuranceType
    region: str
    memberships: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    accumulators: Mapping[str, Accumulator] = field(default_factory=lambda: _NO_ACCUMULATORS)
    units_received: Mapping[str, int] = field(default_factory=lambda: _NO_UNITS)
    consents: frozenset[str] = frozenset()
    personal_account: Fen | None = None


NOTHING_PAID_BEFORE: tuple[Fen, Fen, Fen, Fen] = (0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class ClaimLine:
    """One drug dispensed: `quantity` units at `unit_price` each (the list price on the bill).

    The units are packages, or smallest units (tablets, vials) when `split`. `authorizations` are
    the plans (by id) whose pre-authorization covers the whole line; `paid_before` is what an
    earlier settlement's plans already paid of each part (indexed by `formulary.Part`), for a
    claim after the fact (事后理赔).
    """

    drug: str
    quantity: int
    unit_price: Fen
    trace_codes: tuple[str, ...] = ()
    prescription_id: str | None = None
    split: bool = False
    authorizations: frozenset[str] = frozenset()
    paid_before: tuple[Fen, Fen, Fen, Fen] = NOTHING_PAID_BEFORE


@dataclass(frozen=True, slots=True)
class Claim:
    serial: str
    service_date: date
    visit: Visit
    diagnoses: tuple[str, ...]
    lines: tuple[ClaimLine, ...]
    drg_group: str | None = None


def check_service_date(service_date: date, *, today: date, tolerance_days: int) -> None:
    """Refuse a claim for care not yet given: a service date after `today` (the caller's day in
    Asia/Shanghai; the engine reads no clock) by more than `tolerance_days`. Settling it would
    move money now and count against a plan year that has not begun; the tolerance absorbs a
    window's clock running slightly ahead.
    """
    if tolerance_days < 0:
        raise ValueError(f"tolerance_days must not be negative, not {tolerance_days}")
    latest = date.max if (date.max - today).days <= tolerance_days else today + timedelta(days=tolerance_days)
    if service_date > latest:
        days = "1 day" if tolerance_days == 1 else f"{tolerance_days} days"
        grace = f"; up to {days} ahead is accepted" if tolerance_days else ""
        raise InputError(
            "serviceDate",
            f"the service date {service_date.isoformat()} is in the future (today is {today.isoformat()}{grace}): "
            "check the date; a claim is settled on or after the day of care",
            ErrorCode.SERVICE_DATE_IN_FUTURE,
        )
