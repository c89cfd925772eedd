"""One payer's rules: eligibility, base, deductible, ratio, caps, variants, in-kind donation.

A plan is data; the waterfall in `engine` applies it. The helpers here answer the questions a
plan asks of a claim (does it hold, which terms apply, what does the ratio pay) without knowing
about any other plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeAlias, TypeVar

from adjudication.claims import Claim, ClaimLine, Institution, InsuranceType, Patient, Visit
from adjudication.errors import ErrorCode, InputError
from adjudication.formulary import Part
from adjudication.money import RATIO_ONE, Fen, Ratio


class PlanKind(StrEnum):
    """The kinds of payer, in the default order a claim meets them (the multi-tier waterfall)."""

    BASIC = "basic"
    SERIOUS_ILLNESS = "serious_illness"
    MEDICAL_ASSISTANCE = "medical_assistance"  # 医疗救助: the public safety net, usually by flags
    COMMERCIAL = "commercial"
    MUTUAL_AID = "mutual_aid"
    CHARITY = "charity"


DEFAULT_WATERFALL: tuple[PlanKind, ...] = tuple(PlanKind)
"""The order of kinds where the patient's insuring region states none."""


def check_waterfall(order: Sequence[PlanKind], path: str = "waterfall") -> None:
    """A region's own order names all six kinds, each once: a kind left out would never pay."""
    seen: set[PlanKind] = set()
    for index, kind in enumerate(order):
        if kind in seen:
            raise InputError(f"{path}[{index}]", f"{kind} is named twice", ErrorCode.DUPLICATE)
        seen.add(kind)
    missing = [kind.value for kind in PlanKind if kind not in seen]
    if missing:
        raise InputError(path, f"must name all six kinds once each; missing: {', '.join(missing)}")


class Catalogue(StrEnum):
    COMMERCIAL = "commercial"


class DeductiblePer(StrEnum):
    YEAR = "year"
    CLAIM = "claim"


@dataclass(frozen=True, slots=True)
class Criteria:
    """Conditions on the patient, the claim and the place. Every non-empty key must hold (AND);
    within one key any entry may match (OR). Used as a plan's `eligible` and a variant's `when`
    (only `when` uses `levels` and `outside_region`).
    """

    insurance_types: frozenset[InsuranceType] = frozenset()
    regions: frozenset[str] = frozenset()
    memberships: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    diagnoses: tuple[str, ...] = ()
    drugs: frozenset[str] = frozenset()
    visits: frozenset[Visit] = frozenset()
    levels: frozenset[int] = frozenset()
    outside_region: bool | None = None

    def failure(self, claim: Claim, patient: Patient, institution: Institution) -> str | None:
        """The first condition that does not hold, in words, or None when all hold."""
        if self.insurance_types and patient.insurance_type not in self.insurance_types:
            return f"insurance type {patient.insurance_type} is not covered"
        if self.regions and patient.region not in self.regions:
            return f"region {patient.region} is not covered"
        if self.memberships and self.memberships.isdisjoint(patient.memberships):
            return "the patient holds none of the required memberships"
        if self.flags and self.flags.isdisjoint(patient.flags):
            return "the patient has none of the required flags"
        if self.diagnoses and not any(d.startswith(self.diagnoses) for d in claim.diagnoses):
            return "no diagnosis of the claim is covered"
        if self.drugs and not any(line.drug in self.drugs for line in claim.lines):
            return "no drug of the claim is covered"
        if self.visits and claim.visit not in self.visits:
            return f"a {claim.visit} visit is not covered"
        if self.levels and institution.level not in self.levels:
            return f"institution level {institution.level} is not covered"
        if self.outside_region is not None and self.outside_region != (institution.region != patient.region):
            return "treatment region does not match"
        return None


ANYONE = Criteria()


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ByLevel(Generic[T]):
    """A value that depends on the institution's level (1, 2, 3)."""

    values: Mapping[int, T]

    def at(self, level: int) -> T | None:
        return self.values.get(level)


@dataclass(frozen=True, slots=True)
class BaseTerm:
    """One part of what is still unpaid counted into a plan's base, at a weight (1 unless stated)."""

    part: Part
    weight: Ratio = RATIO_ONE


@dataclass(frozen=True, slots=True)
class Deductible:
    """起付线. Per year it is met once across claims (a claim at a level with a higher amount tops
    up the difference); per claim it applies in full to every claim, or `subsequent` to the
    second and later claims of the year.
    """

    amount: Fen | ByLevel[Fen]
    per: DeductiblePer = DeductiblePer.YEAR
    subsequent: Fen | ByLevel[Fen] | None = None


@dataclass(frozen=True, slots=True)
class Rate:
    rate: Ratio


@dataclass(frozen=True, slots=True)
class Band:
    """Pays `rate` on the part of the year's cumulative base spend up to `upto` (None: no end)."""

    upto: Fen | None
    rate: Ratio


@dataclass(frozen=True, slots=True)
class Bands:
    """Rates by cumulative base spend in the year; a claim crossing a boundary is split across."""

    bands: tuple[Band, ...]


RatioRule: TypeAlias = Rate | Bands | ByLevel[Rate | Bands]


@dataclass(frozen=True, slots=True)
class Caps:
    claim: Fen | None = None
    annual: Fen | None = None


NO_CAPS = Caps()


@dataclass(frozen=True, slots=True)
class Variant:
    """Terms for a kind of person or place; the first whose `when` holds replaces what it names."""

    when: Criteria
    deductible: Deductible | None = None
    ratio: RatioRule | None = None
    caps: Caps | None = None


@dataclass(frozen=True, slots=True)
class InKind:
    """A donation programme: units numbered after `after_units` in the year, up to
    `after_units + free_units`, are given free (the programme pays their full price).
    """

    drug: str
    after_units: int
    free_units: int


@dataclass(frozen=True, slots=True)
class Plan:
    """One payer's rules. A plan either pays in kind (`in_kind`) or pays a ratio of a base.

    `requires_authorization` names the drugs (or True: every drug) the plan pays for only on a
    line whose `authorizations` list the plan (事前审核); `requires_consent` makes the plan pay
    only a patient who consented to its payer (签约授权).
    """

    id: str
    payer: str
    kind: PlanKind
    eligible: Criteria = ANYONE
    base: tuple[BaseTerm, ...] = ()
    only_catalogue: Catalogue | None = None
    deductible: Deductible | None = None
    ratio: RatioRule = field(default_factory=lambda: Rate(0))
    caps: Caps = NO_CAPS
    variants: tuple[Variant, ...] = ()
    in_kind: InKind | None = None
    requires_authorization: bool | frozenset[str] = False
    requires_consent: bool = False
    base_in_order: tuple[BaseTerm, ...] = field(init=False, repr=False, compare=False)
    """`base` in the order payments are taken from the parts (in_scope first); derived."""
    weighted: bool = field(init=False, repr=False, compare=False)
    """Whether any base part counts at a weight other than 1; derived."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_in_order", tuple(sorted(self.base, key=lambda term: term.part)))
        object.__setattr__(self, "weighted", any(term.weight != RATIO_ONE for term in self.base))

    def authorized(self, line: ClaimLine) -> bool:
        """Whether the plan may pay on `line`: it needs no authorization for the drug, or has one."""
        required = self.requires_authorization
        needed = required if isinstance(required, bool) else line.drug in required
        return not needed or self.id in line.authorizations

    def consented(self, patient: Patient) -> bool:
        return not self.requires_consent or self.payer in patient.consents


@dataclass(frozen=True, slots=True)
class Terms:
    """The deductible, ratio and caps that apply to one claim, after variants and levels."""

    deductible: Deductible | None
    ratio: RatioRule
    caps: Caps
    variant: int | None


def terms_for(plan: Plan, claim: Claim, patient: Patient, institution: Institution) -> Terms:
    """The plan's own terms, with those named by the first variant that holds replaced."""
    for index, variant in enumerate(plan.variants):
        if variant.when.failure(claim, patient, institution) is None:
            return Terms(
                deductible=variant.deductible if variant.deductible is not None else plan.deductible,
                ratio=variant.ratio if variant.ratio is not None else plan.ratio,
                caps=variant.caps if variant.caps is not None else plan.caps,
                variant=index,
            )
    return Terms(plan.deductible, plan.ratio, plan.caps, None)


def at_level(value: T | ByLevel[T], level: int) -> T | None:
    """A level-dependent value at `level`, or None when the plan states none for that level."""
    return value.at(level) if isinstance(value, ByLevel) else value


def pay_micro(rule: Rate | Bands, amount: Fen, spent_before: Fen) -> int:
    """What the ratio pays on `amount` of base (after the deductible), in micro-fen (fen × 10⁶).

    For bands, the amount occupies [spent_before, spent_before + amount) of the year's cumulative
    base spend, and each band's rate applies to its own part of that interval. Past a last band
    with an end, nothing is paid.
    """
    if isinstance(rule, Rate):
        return amount * rule.rate
    total = 0
    start, end, lower = spent_before, spent_before + amount, 0
    for band in rule.bands:
        upper = end if band.upto is None else band.upto
        overlap = min(end, upper) - max(start, lower)
        if overlap > 0:
            total += overlap * band.rate
        if band.upto is None or band.upto >= end:
            break
        lower = band.upto
    return total
