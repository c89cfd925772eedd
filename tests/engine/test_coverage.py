"""Whether any plan covers the person: a claim no plan accepts is refused (NOT_ELIGIBLE), one
that some plan accepts is settled even when that plan pays nothing."""

from __future__ import annotations

from datetime import date
from types import MappingProxyType

from hypothesis import given

from adjudication import (
    Adjudication,
    BaseTerm,
    BasicEntry,
    ByLevel,
    Caps,
    Catalogue,
    Category,
    Claim,
    ClaimLine,
    Criteria,
    Formulary,
    Institution,
    InstitutionKind,
    InsuranceType,
    Part,
    Patient,
    Plan,
    PlanKind,
    Rate,
    Visit,
    adjudicate,
    covered,
)
from adjudication.money import RATIO_ONE
from tests.engine.strategies import Case, cases

HOSPITAL = Institution("H310001", InstitutionKind.HOSPITAL, 2, "310100")
FORMULARY = Formulary.of(basic=(BasicEntry("XL01XE00004", Category.A),))
EMPLOYEE = Patient(InsuranceType.EMPLOYEE, "310100")
CLAIM = Claim("S-1", date(2026, 3, 15), Visit.OUTPATIENT, ("I10",), (ClaimLine("XL01XE00004", 1, 10_000),))
RESIDENTS_ONLY = Criteria(insurance_types=frozenset({InsuranceType.RESIDENT}))


def basic(plan_id: str = "BASIC", **terms: object) -> Plan:
    return Plan(plan_id, "NHSA-310100", PlanKind.BASIC, base=(BaseTerm(Part.IN_SCOPE),), **terms)  # type: ignore[arg-type]


def settle(*plans: Plan) -> Adjudication:
    return adjudicate(CLAIM, patient=EMPLOYEE, institution=HOSPITAL, formulary=FORMULARY, plans=plans)


def test_with_no_plan_nobody_is_covered() -> None:
    assert not covered(settle())


def test_a_person_every_plan_refuses_is_not_covered() -> None:
    level_three_only = ByLevel(MappingProxyType({3: Rate(RATIO_ONE)}))
    assert not covered(settle(basic(eligible=RESIDENTS_ONLY), basic("OTHER", ratio=level_three_only)))


def test_one_plan_accepting_the_person_is_enough() -> None:
    assert covered(settle(basic(eligible=RESIDENTS_ONLY), basic("OTHER", ratio=Rate(RATIO_ONE))))


def test_a_plan_that_accepts_the_person_covers_them_even_when_it_pays_nothing() -> None:
    capped = basic(ratio=Rate(RATIO_ONE), caps=Caps(claim=0))
    commercial = Plan(
        "CI", "INS-A", PlanKind.COMMERCIAL, base=(BaseTerm(Part.IN_SCOPE),), only_catalogue=Catalogue.COMMERCIAL
    )
    for plan in (capped, commercial):
        result = settle(plan)
        assert result.payers[0].amount == 0
        assert covered(result)


@given(cases())
def test_a_person_no_plan_covers_pays_the_whole_bill_and_no_total_moves(case: Case) -> None:
    result = case.run()
    if not covered(result):
        assert result.paid_before + result.patient == result.total
        assert not result.accumulator_changes
