"""Rules of SCENARIO.md that the worked scenarios leave at their edges, checked on engine values."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from types import MappingProxyType

import pytest

from adjudication import (
    Adjudication,
    Band,
    Bands,
    BaseTerm,
    BasicEntry,
    ByLevel,
    Category,
    Claim,
    ClaimLine,
    ErrorCode,
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
    ReasonCode,
    StandardPer,
    Visit,
    adjudicate,
)
from adjudication.money import RATIO_ONE

HOSPITAL = Institution("H310001", InstitutionKind.HOSPITAL, 2, "310100")
FORMULARY = Formulary.of(basic=(BasicEntry("XL01XE00004", Category.A),))
PATIENT = Patient(InsuranceType.EMPLOYEE, "310100")


def claim_of(quantity: int, unit_price: int, drug: str = "XL01XE00004") -> Claim:
    return Claim("S-1", date(2026, 3, 15), Visit.OUTPATIENT, ("I10",), (ClaimLine(drug, quantity, unit_price),))


def plan(**terms: object) -> Plan:
    return Plan("P", "NHSA-310100", PlanKind.BASIC, base=(BaseTerm(Part.IN_SCOPE),), **terms)  # type: ignore[arg-type]


def test_past_a_last_band_with_an_end_nothing_more_is_paid() -> None:
    bands = Bands((Band(100_000, RATIO_ONE // 2),))
    result = adjudicate(
        claim_of(1, 300_000), patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[plan(ratio=bands)]
    )
    assert result.payers[0].amount == 50_000
    assert result.accumulators["P"].base_spent == 300_000


def test_a_plan_without_terms_for_the_institutions_level_is_not_eligible_there() -> None:
    rule = ByLevel(MappingProxyType({3: Rate(RATIO_ONE)}))
    result = adjudicate(
        claim_of(1, 10_000), patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[plan(ratio=rule)]
    )
    payer = result.payers[0]
    assert (payer.amount, [r.code for r in payer.reasons]) == (0, [ReasonCode.NOT_ELIGIBLE])
    assert "P" not in result.accumulator_changes


def test_a_donation_is_given_once_a_year() -> None:
    programme = Plan("PAP", "CHARITY-X", PlanKind.CHARITY, in_kind=InKind("XL01XE00004", 3, 3))
    received = Patient(InsuranceType.EMPLOYEE, "310100", units_received=MappingProxyType({"XL01XE00004": 6}))
    result = adjudicate(
        claim_of(4, 10_000), patient=received, institution=HOSPITAL, formulary=FORMULARY, plans=[programme]
    )
    assert result.payers[0].amount == 0
    assert result.lines[0].donated_units == 0
    assert result.units_received["XL01XE00004"] == 10


def test_a_drug_in_no_catalogue_is_out_of_scope_not_an_error() -> None:
    result = adjudicate(
        claim_of(2, 5_000, drug="XUNKNOWN0001"),
        patient=PATIENT,
        institution=HOSPITAL,
        formulary=FORMULARY,
        plans=[plan(ratio=Rate(RATIO_ONE))],
    )
    assert result.lines[0].parts == (0, 0, 0, 10_000)
    assert [r.code for r in result.lines[0].reasons] == [ReasonCode.NOT_IN_CATALOGUE]
    assert result.patient == 10_000


@pytest.mark.parametrize("quantity", [0, -3])
def test_a_quantity_below_one_is_refused_with_its_field(quantity: int) -> None:
    with pytest.raises(InputError) as refused:
        adjudicate(claim_of(quantity, 100), patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[])
    assert (refused.value.field, refused.value.code) == ("claim.lines[0].quantity", ErrorCode.INVALID_QUANTITY)


def test_a_hospital_cannot_submit_a_pharmacy_visit() -> None:
    claim = Claim("S-1", date(2026, 3, 15), Visit.PHARMACY, (), (ClaimLine("XL01XE00004", 1, 100),))
    with pytest.raises(InputError) as refused:
        adjudicate(claim, patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[])
    assert refused.value.code is ErrorCode.VISIT_MISMATCH


def test_with_no_plan_the_patient_pays_everything() -> None:
    result = adjudicate(claim_of(3, 333), patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[])
    assert (result.total, result.patient, result.payers) == (999, 999, ())


def tablets(quantity: int, unit_price: int, entry: BasicEntry) -> Adjudication:
    claim = Claim(
        "S-1", date(2026, 3, 15), Visit.OUTPATIENT, ("I10",), (ClaimLine(entry.drug, quantity, unit_price, split=True),)
    )
    return adjudicate(claim, patient=PATIENT, institution=HOSPITAL, formulary=Formulary.of(basic=(entry,)), plans=[])


def test_a_split_line_priced_under_the_per_unit_quotient_is_allowed_in_full() -> None:
    entry = BasicEntry("XL01XE00004", Category.A, payment_standard=10_000, package_units=3)  # 33.333... a tablet
    assert tablets(7, 3_333, entry).lines[0].parts == (23_331, 0, 0, 0)


def test_a_split_line_against_a_per_smallest_standard_needs_no_package_units() -> None:
    entry = BasicEntry("XL01XE00004", Category.A, payment_standard=17_000, standard_per=StandardPer.SMALLEST)
    assert tablets(3, 18_000, entry).lines[0].parts == (51_000, 0, 3_000, 0)


def test_a_split_line_meeting_a_per_package_standard_without_package_units_is_refused() -> None:
    entry = BasicEntry("XL01XE00004", Category.A, payment_standard=17_000)
    with pytest.raises(InputError) as refused:
        tablets(3, 18_000, entry)
    assert (refused.value.field, refused.value.code) == ("formulary.basic[0].package_units", ErrorCode.MISSING_FIELD)


def test_a_split_line_adds_no_package_to_units_received() -> None:
    entry = BasicEntry("XL01XE00004", Category.A, payment_standard=17_000, package_units=30)
    assert tablets(3, 100, entry).units_received == {"XL01XE00004": 0}


def test_a_waterfall_that_leaves_a_kind_out_is_refused_on_engine_values_too() -> None:
    order = (PlanKind.BASIC, PlanKind.SERIOUS_ILLNESS, PlanKind.COMMERCIAL, PlanKind.MUTUAL_AID, PlanKind.CHARITY)
    with pytest.raises(InputError) as refused:
        adjudicate(
            claim_of(1, 100), patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[], waterfall=order
        )
    assert refused.value.field == "waterfall"


def test_a_donation_programme_without_the_patients_consent_gives_nothing_yet_the_units_count() -> None:
    programme = Plan("PAP", "CHARITY-X", PlanKind.CHARITY, in_kind=InKind("XL01XE00004", 0, 3), requires_consent=True)
    result = adjudicate(
        claim_of(2, 10_000), patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[programme]
    )
    assert [r.code for r in result.payers[0].reasons] == [ReasonCode.NO_PATIENT_CONSENT]
    assert (result.payers[0].amount, result.lines[0].donated_units) == (0, 0)
    assert result.units_received == {"XL01XE00004": 2}


def test_a_donation_programme_left_with_no_authorized_line_says_so() -> None:
    programme = Plan(
        "PAP", "CHARITY-X", PlanKind.CHARITY, in_kind=InKind("XL01XE00004", 0, 3), requires_authorization=True
    )
    result = adjudicate(
        claim_of(2, 10_000), patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[programme]
    )
    assert [r.code for r in result.payers[0].reasons] == [ReasonCode.NOT_AUTHORIZED]
    assert [r.code for r in result.lines[0].reasons] == [ReasonCode.NOT_AUTHORIZED]


def test_without_a_personal_account_the_patient_pays_everything_in_cash() -> None:
    result = adjudicate(claim_of(3, 333), patient=PATIENT, institution=HOSPITAL, formulary=FORMULARY, plans=[])
    assert (result.personal_account_paid, result.personal_account_balance, result.cash) == (0, 0, 999)


def test_a_personal_account_covering_every_part_leaves_cash_only_beyond_its_balance() -> None:
    patient = replace(PATIENT, personal_account=500)
    result = adjudicate(
        claim_of(3, 333),
        patient=patient,
        institution=HOSPITAL,
        formulary=FORMULARY,
        plans=[],
        personal_account_covers=tuple(Part),
    )
    assert (result.personal_account_paid, result.personal_account_balance, result.cash) == (500, 0, 499)
