"""Hypothesis strategies for random claims, formularies, patients and plans (engine values)."""

from __future__ import annotations

from datetime import date
from types import MappingProxyType

from hypothesis import strategies as st

from adjudication import (
    Accumulator,
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
    Institution,
    InstitutionKind,
    InsuranceType,
    Part,
    Patient,
    Plan,
    PlanKind,
    Rate,
    Variant,
    Visit,
)
from adjudication.money import RATIO_ONE

DRUGS = ("XL01XC00001", "XL01XX00002", "XL01XX00003", "XL01XE00004", "XA10BX00005")
INSURERS = ("INS-A", "INS-B")
REGIONS = ("310100", "320100")
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
    )


@st.composite
def formularies(draw: st.DrawFn) -> Formulary:
    listed = draw(st.lists(st.sampled_from(DRUGS), unique=True, max_size=len(DRUGS)))
    commercial = draw(st.lists(st.tuples(st.sampled_from(DRUGS), st.sampled_from(INSURERS)), unique=True, max_size=4))
    return Formulary.of(
        basic=tuple(draw(basic_entries(drug)) for drug in listed),
        self_pay_first_ratio=draw(ratios),
        commercial=tuple(CommercialEntry(d, i, draw(st.integers(0, 1_000_000))) for d, i in commercial),
    )


@st.composite
def criteria(draw: st.DrawFn, conditions: bool = False) -> Criteria:
    return Criteria(
        insurance_types=draw(st.frozensets(st.sampled_from(InsuranceType), max_size=1)),
        regions=draw(st.frozensets(st.sampled_from(REGIONS), max_size=1)),
        memberships=draw(subset(MEMBERSHIPS)),
        flags=draw(st.frozensets(st.sampled_from(FLAGS), max_size=1)),
        diagnoses=tuple(draw(st.lists(st.sampled_from(("C50", "C34", "I")), max_size=1))),
        drugs=frozenset() if conditions else draw(st.frozensets(st.sampled_from(DRUGS), max_size=2)),
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


@st.composite
def plans(draw: st.DrawFn, plan_id: str) -> Plan:
    kind = draw(st.sampled_from(PlanKind))
    if kind is PlanKind.CHARITY and draw(st.integers(0, 3)) == 0:
        return Plan(
            plan_id,
            "CHARITY-X",
            kind,
            eligible=draw(criteria()),
            in_kind=InKind(draw(st.sampled_from(DRUGS)), draw(st.integers(0, 6)), draw(st.integers(1, 6))),
        )
    parts = draw(st.lists(st.sampled_from(Part), unique=True, min_size=1))
    base = tuple(BaseTerm(part, draw(st.sampled_from([RATIO_ONE, RATIO_ONE, 500_000]) | ratios)) for part in parts)
    return Plan(
        plan_id,
        draw(st.sampled_from((*INSURERS, "NHSA-310100", "MA-UNION"))),
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
    )


@st.composite
def institutions(draw: st.DrawFn) -> Institution:
    kind = draw(st.sampled_from(InstitutionKind))
    return Institution("H310001", kind, draw(st.integers(1, 3)), draw(st.sampled_from(REGIONS)))


@st.composite
def claims(draw: st.DrawFn, institution: Institution) -> Claim:
    visit = (
        Visit.PHARMACY
        if institution.kind is InstitutionKind.PHARMACY
        else draw(st.sampled_from((Visit.OUTPATIENT, Visit.INPATIENT)))
    )
    lines = draw(
        st.lists(
            st.builds(
                ClaimLine,
                drug=st.sampled_from(DRUGS),
                quantity=st.integers(1, 12),
                unit_price=st.integers(0, 1_500_000),
            ),
            min_size=1,
            max_size=4,
        )
    )
    diagnoses = tuple(draw(st.lists(st.sampled_from(DIAGNOSES), min_size=1, max_size=2)))
    return Claim("S-1", date(2026, 3, 15), visit, diagnoses, tuple(lines))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Claim, Patient, Institution, Formulary, tuple[Plan, ...]]:
    """A whole random adjudication: claim, patient, institution, formulary, plans."""
    institution = draw(institutions())
    plan_list = draw(plan_lists())
    return (
        draw(claims(institution)),
        draw(patients(tuple(plan.id for plan in plan_list))),
        institution,
        draw(formularies()),
        plan_list,
    )


PAYERS = ("CHARITY-X", "INS-A", "INS-B", "MA-UNION", "NHSA-310100")

payer_amounts = st.dictionaries(st.sampled_from(PAYERS), fen)
"""Amounts by payer code: what payers owe on a settlement, or their pools' balances."""
