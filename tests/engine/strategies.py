"""Hypothesis strategies for random claims, formularies, patients and plans (engine values)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from types import MappingProxyType
from typing import TypeVar

from hypothesis import strategies as st

from adjudication import (
    Accumulator,
    Adjudication,
    Band,
    Bands,
    BaseTerm,
    BasicEntry,
    ByLevel,
    Caps,
    Catalogue,
    Category,
    Claim,
    ClaimLine,
    CommercialEntry,
    Criteria,
    Deductible,
    DeductiblePer,
    Formulary,
    InKind,
    InputError,
    Institution,
    InstitutionKind,
    InsuranceType,
    Part,
    Patient,
    Plan,
    PlanKind,
    Rate,
    StandardPer,
    Variant,
    Visit,
    adjudicate,
)
from adjudication.engine import DEFAULT_PERSONAL_ACCOUNT_COVERS
from adjudication.formulary import PARTS
from adjudication.money import RATIO_ONE
from adjudication.plans import DEFAULT_WATERFALL

T = TypeVar("T")

DRUGS = ("XL01XC00001", "XL01XX00002", "XL01XX00003", "XL01XE00004", "XA10BX00005")
INSURERS = ("INS-A", "INS-B")
REGIONS = ("310100", "320100")
PAYERS = (*INSURERS, "NHSA-310100", "MA-UNION", "CHARITY-X")
FLAGS = ("low_income", "retired")
MEMBERSHIPS = ("MA-1", "MA-2")
DIAGNOSES = ("C50.9", "C34.1", "I10")

fen = st.integers(min_value=0, max_value=5_000_000)
small_fen = st.integers(min_value=0, max_value=300_000)
ratios = st.one_of(st.sampled_from([0, RATIO_ONE, 500_000, 700_000, 850_000]), st.integers(0, RATIO_ONE))


def subset(values: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(values), max_size=len(values))


@st.composite
def basic_entries(draw: st.DrawFn, drug: str) -> BasicEntry:
    return BasicEntry(
        drug=drug,
        category=draw(st.sampled_from(Category)),
        payment_standard=draw(st.none() | st.integers(1, 500_000)),
        self_pay_first_ratio=draw(st.none() | ratios),
        negotiated=draw(st.booleans()),
        dual_channel=draw(st.booleans()),
        restricted_diagnoses=tuple(draw(st.lists(st.sampled_from(("C50", "C34")), max_size=1))),
        restricted_visits=draw(st.frozensets(st.sampled_from(Visit), max_size=2)),
        standard_per=draw(st.sampled_from(StandardPer)),
        package_units=draw(st.integers(1, 60)),
    )


@st.composite
def formularies(draw: st.DrawFn) -> Formulary:
    listed = draw(st.lists(st.sampled_from(DRUGS), unique=True, max_size=len(DRUGS)))
    commercial = draw(st.lists(st.tuples(st.sampled_from(DRUGS), st.sampled_from(INSURERS)), unique=True, max_size=4))
    return Formulary.of(
        basic=tuple(draw(basic_entries(drug)) for drug in listed),
        self_pay_first_ratio=draw(ratios),
        commercial=tuple(
            CommercialEntry(d, i, draw(st.integers(0, 1_000_000)), draw(st.none() | st.integers(1, 60)))
            for d, i in commercial
        ),
    )


def rarely(strategy: st.SearchStrategy[T], empty: T) -> st.SearchStrategy[T]:
    """`empty` three times in four: random conditions that all restrict would leave no plan paying."""
    return st.one_of(st.just(empty), st.just(empty), st.just(empty), strategy)


@st.composite
def criteria(draw: st.DrawFn, conditions: bool = False) -> Criteria:
    nothing: frozenset[str] = frozenset()
    return Criteria(
        insurance_types=draw(rarely(st.frozensets(st.sampled_from(InsuranceType), max_size=1), frozenset())),
        regions=draw(rarely(st.frozensets(st.sampled_from(REGIONS), max_size=1), nothing)),
        memberships=draw(rarely(subset(MEMBERSHIPS), nothing)),
        flags=draw(rarely(st.frozensets(st.sampled_from(FLAGS), max_size=1), nothing)),
        diagnoses=tuple(draw(rarely(st.lists(st.sampled_from(("C50", "C34", "I")), max_size=1), []))),
        drugs=nothing if conditions else draw(rarely(st.frozensets(st.sampled_from(DRUGS), max_size=2), nothing)),
        visits=draw(rarely(st.frozensets(st.sampled_from(Visit), max_size=2), frozenset())),
        levels=draw(st.frozensets(st.integers(1, 3), max_size=2)) if conditions else frozenset(),
        outside_region=draw(st.none() | st.booleans()) if conditions else None,
    )


@st.composite
def bands(draw: st.DrawFn) -> Bands:
    bounds = sorted(draw(st.lists(st.integers(1, 20_000_000), unique=True, max_size=3)))
    open_ended = draw(st.booleans()) or not bounds
    uptos: list[int | None] = [*bounds, None] if open_ended else list(bounds)
    return Bands(tuple(Band(upto, draw(ratios)) for upto in uptos))


def rate_or_bands() -> st.SearchStrategy[Rate | Bands]:
    return st.one_of(ratios.map(Rate), bands())


def ratio_rules() -> st.SearchStrategy[Rate | Bands | ByLevel[Rate | Bands]]:
    by_level = st.dictionaries(st.integers(1, 3), rate_or_bands(), min_size=1).map(
        lambda values: ByLevel(MappingProxyType(values))
    )
    return st.one_of(rate_or_bands(), by_level)


def level_amounts() -> st.SearchStrategy[int | ByLevel[int]]:
    return st.one_of(
        small_fen,
        st.dictionaries(st.integers(1, 3), small_fen, min_size=1).map(lambda values: ByLevel(MappingProxyType(values))),
    )


@st.composite
def deductibles(draw: st.DrawFn) -> Deductible:
    per = draw(st.sampled_from(DeductiblePer))
    subsequent = draw(st.none() | level_amounts()) if per is DeductiblePer.CLAIM else None
    return Deductible(amount=draw(level_amounts()), per=per, subsequent=subsequent)


caps = st.builds(Caps, claim=st.none() | fen, annual=st.none() | fen)


def authorization_rules() -> st.SearchStrategy[bool | frozenset[str]]:
    return st.one_of(st.just(False), st.just(True), st.frozensets(st.sampled_from(DRUGS), min_size=1, max_size=2))


@st.composite
def plans(draw: st.DrawFn, plan_id: str, donation: bool = True) -> Plan:
    """A random plan; with `donation`, sometimes a donation programme."""
    kind = draw(st.sampled_from(PlanKind))
    requires_authorization = draw(rarely(authorization_rules(), False))
    requires_consent = draw(st.integers(0, 3)) == 0
    if donation and kind is PlanKind.CHARITY and draw(st.integers(0, 3)) == 0:
        return Plan(
            plan_id,
            "CHARITY-X",
            kind,
            eligible=draw(criteria()),
            in_kind=InKind(draw(st.sampled_from(DRUGS)), draw(st.integers(0, 6)), draw(st.integers(1, 6))),
            requires_authorization=requires_authorization,
            requires_consent=requires_consent,
        )
    parts = draw(st.lists(st.sampled_from(Part), unique=True, min_size=1))
    base = tuple(BaseTerm(part, draw(st.sampled_from([RATIO_ONE, RATIO_ONE, 500_000]) | ratios)) for part in parts)
    return Plan(
        plan_id,
        draw(st.sampled_from(PAYERS[:-1])),
        kind,
        eligible=draw(criteria()),
        base=base,
        only_catalogue=draw(st.sampled_from([None, None, Catalogue.COMMERCIAL])),
        deductible=draw(st.none() | deductibles()),
        ratio=draw(ratio_rules()),
        caps=draw(caps),
        variants=tuple(
            draw(
                st.lists(
                    st.builds(
                        Variant,
                        when=criteria(conditions=True),
                        deductible=st.none() | deductibles(),
                        ratio=st.none() | ratio_rules(),
                        caps=st.none() | caps,
                    ),
                    max_size=2,
                )
            )
        ),
        requires_authorization=requires_authorization,
        requires_consent=requires_consent,
    )


@st.composite
def plan_lists(draw: st.DrawFn, max_size: int = 5) -> tuple[Plan, ...]:
    count = draw(st.integers(0, max_size))
    return tuple(draw(plans(f"PLAN-{index}")) for index in range(count))


accumulators = st.builds(Accumulator, deductible_met=small_fen, base_spent=fen, paid=fen, claims=st.integers(0, 5))


@st.composite
def patients(draw: st.DrawFn, plan_ids: tuple[str, ...]) -> Patient:
    return Patient(
        insurance_type=draw(st.sampled_from(InsuranceType)),
        region=draw(st.sampled_from(REGIONS)),
        memberships=draw(subset(MEMBERSHIPS)),
        flags=draw(subset(FLAGS)),
        accumulators=MappingProxyType({plan_id: draw(accumulators) for plan_id in plan_ids if draw(st.booleans())}),
        units_received=MappingProxyType(draw(st.dictionaries(st.sampled_from(DRUGS), st.integers(0, 10)))),
        consents=draw(subset(PAYERS)),
        personal_account=draw(st.none() | st.integers(0, 300_000) | fen),
    )


@st.composite
def institutions(draw: st.DrawFn) -> Institution:
    kind = draw(st.sampled_from(InstitutionKind))
    return Institution("H310001", kind, draw(st.integers(1, 3)), draw(st.sampled_from(REGIONS)))


@st.composite
def claims(draw: st.DrawFn, institution: Institution, plan_ids: tuple[str, ...]) -> Claim:
    visit = (
        Visit.PHARMACY
        if institution.kind is InstitutionKind.PHARMACY
        else draw(st.sampled_from((Visit.OUTPATIENT, Visit.OUTPATIENT_CHRONIC, Visit.INPATIENT)))
    )
    lines = draw(
        st.lists(
            st.builds(
                ClaimLine,
                drug=st.sampled_from(DRUGS),
                quantity=st.integers(1, 12),
                unit_price=st.integers(0, 1_500_000),
                split=st.booleans(),
                authorizations=st.frozensets(st.sampled_from(plan_ids)) if plan_ids else st.just(frozenset()),
            ),
            min_size=1,
            max_size=4,
        )
    )
    diagnoses = tuple(draw(st.lists(st.sampled_from(DIAGNOSES), min_size=1, max_size=2)))
    return Claim("S-1", date(2026, 3, 15), visit, diagnoses, tuple(lines))


@dataclass(frozen=True, slots=True)
class Case:
    """A whole random adjudication: claim, patient, institution, formulary, plans and the region's
    policies (waterfall order, what the personal account covers).
    """

    claim: Claim
    patient: Patient
    institution: Institution
    formulary: Formulary
    plans: tuple[Plan, ...]
    waterfall: tuple[PlanKind, ...] = DEFAULT_WATERFALL
    personal_account_covers: tuple[Part, ...] = DEFAULT_PERSONAL_ACCOUNT_COVERS

    def run(self) -> Adjudication:
        return adjudicate(
            self.claim,
            patient=self.patient,
            institution=self.institution,
            formulary=self.formulary,
            plans=self.plans,
            waterfall=self.waterfall,
            personal_account_covers=self.personal_account_covers,
        )


def settleable(claim: Claim, formulary: Formulary, plan_list: tuple[Plan, ...]) -> Claim:
    """The claim with `split` dropped from the lines whose units could not be settled split (a
    donated drug, or no package_units to convert with): those are malformed, tested elsewhere.
    """
    donated = frozenset(plan.in_kind.drug for plan in plan_list if plan.in_kind is not None)
    lines = []
    for index, line in enumerate(claim.lines):
        try:
            formulary.check_units(line, f"claim.lines[{index}]", donated)
        except InputError:
            line = replace(line, split=False)
        lines.append(line)
    return replace(claim, lines=tuple(lines))


@st.composite
def cases(draw: st.DrawFn, paid_before: bool = True) -> Case:
    """A random case; with `paid_before`, some lines carry amounts an earlier settlement paid, each
    at most its part (the parts are those of the same claim without them).
    """
    institution = draw(institutions())
    plan_list = draw(plan_lists())
    formulary = draw(formularies())
    plan_ids = tuple(plan.id for plan in plan_list)
    case = Case(
        settleable(draw(claims(institution, plan_ids)), formulary, plan_list),
        draw(patients(plan_ids)),
        institution,
        formulary,
        plan_list,
        tuple(draw(st.permutations(list(PlanKind)))),
        tuple(draw(st.lists(st.sampled_from(PARTS), unique=True))),
    )
    if not paid_before or not draw(st.booleans()):
        return case
    first = case.run()
    lines = tuple(
        replace(line, paid_before=tuple(draw(st.integers(0, part)) for part in result.parts))  # type: ignore[arg-type]
        if draw(st.booleans())
        else line
        for line, result in zip(case.claim.lines, first.lines, strict=True)
    )
    return replace(case, claim=replace(case.claim, lines=lines))


PAYERS = ("CHARITY-X", "INS-A", "INS-B", "MA-UNION", "NHSA-310100")

payer_amounts = st.dictionaries(st.sampled_from(PAYERS), fen)
"""Amounts by payer code: what payers owe on a settlement, or their pools' balances."""
