"""Properties that hold for every claim and every set of plans, checked over random ones."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from adjudication import Adjudication, Claim, Formulary, Institution, Patient, Plan, adjudicate
from adjudication.claims import ZERO_ACCUMULATOR
from adjudication.plans import terms_for
from tests.engine.strategies import cases, plans

Case = tuple[Claim, Patient, Institution, Formulary, tuple[Plan, ...]]
EXAMPLES = settings(max_examples=400, deadline=None)


def run(case: Case) -> Adjudication:
    claim, patient, institution, formulary, plan_list = case
    return adjudicate(claim, patient=patient, institution=institution, formulary=formulary, plans=plan_list)


@EXAMPLES
@given(cases())
def test_payers_and_patient_add_up_to_the_fen_per_line_and_per_claim(case: Case) -> None:
    result = run(case)
    claim = case[0]
    assert result.total == sum(line.quantity * line.unit_price for line in claim.lines)
    assert result.patient + sum(payer.amount for payer in result.payers) == result.total
    for line, source in zip(result.lines, claim.lines, strict=True):
        assert line.total == source.quantity * source.unit_price
        assert line.patient + sum(line.paid.values()) == line.total
        donated_value = sum(line.paid[plan.id] for plan in case[4] if plan.in_kind is not None)
        assert sum(line.parts) + donated_value == line.total
    for payer in result.payers:
        assert sum(line.paid[payer.plan] for line in result.lines) == payer.amount


@EXAMPLES
@given(cases())
def test_no_amount_is_negative(case: Case) -> None:
    result = run(case)
    assert result.patient >= 0
    for payer in result.payers:
        assert min(payer.amount, payer.base, payer.deductible_applied) >= 0
    for line in result.lines:
        assert line.patient >= 0 and min(line.parts) >= 0 and min(line.paid.values(), default=0) >= 0
    assert all(rebate.amount is not None and rebate.amount >= 0 for rebate in result.rebates)


@EXAMPLES
@given(cases())
def test_the_split_never_depends_on_settlement_prices_and_an_unknown_price_leaves_its_rebate_not_computable(
    case: Case,
) -> None:
    claim, patient, institution, formulary, plan_list = case
    unknown = Formulary.of(
        basic=tuple(formulary.basic.values()),
        self_pay_first_ratio=formulary.self_pay_first_ratio,
        commercial=tuple(replace(entry, settlement_price=None) for entry in formulary.commercial.values()),
    )
    known, blind = run(case), run((claim, patient, institution, unknown, plan_list))
    assert replace(blind, rebates=()) == replace(known, rebates=())
    assert [(r.line, r.drug, r.insurer) for r in blind.rebates] == [(r.line, r.drug, r.insurer) for r in known.rebates]
    assert all(rebate.amount is None for rebate in blind.rebates)


@EXAMPLES
@given(cases())
def test_no_payer_pays_more_than_its_base_or_its_caps(case: Case) -> None:
    claim, patient, institution, _, plan_list = case
    result = run(case)
    by_id = {plan.id: plan for plan in plan_list}
    for payer in result.payers:
        plan = by_id[payer.plan]
        assert payer.amount <= payer.base
        assert payer.deductible_applied <= payer.base
        if plan.in_kind is not None:
            continue
        caps = terms_for(plan, claim, patient, institution).caps
        before = patient.accumulators.get(plan.id, ZERO_ACCUMULATOR)
        if caps.claim is not None:
            assert payer.amount <= caps.claim
        if caps.annual is not None:
            assert payer.amount <= max(0, caps.annual - before.paid)


@EXAMPLES
@given(cases())
def test_accumulator_changes_are_exactly_what_the_claim_added(case: Case) -> None:
    patient = case[1]
    result = run(case)
    for plan_id, after in result.accumulators.items():
        before = patient.accumulators.get(plan_id, ZERO_ACCUMULATOR)
        assert before + result.accumulator_changes.get(plan_id, ZERO_ACCUMULATOR) == after
    donation_programmes = {plan.id for plan in case[4] if plan.in_kind is not None}
    for payer in result.payers:
        change = result.accumulator_changes.get(payer.plan, ZERO_ACCUMULATOR)
        # donation programmes count units, not money: their accumulators never change
        assert change.paid == (0 if payer.plan in donation_programmes else payer.amount)


@EXAMPLES
@given(cases(), st.data())
def test_more_insurance_never_makes_the_patient_pay_more(case: Case, data: st.DataObject) -> None:
    claim, patient, institution, formulary, plan_list = case
    extra = data.draw(plans("EXTRA"))
    position = data.draw(st.integers(0, len(plan_list)))
    more = (*plan_list[:position], extra, *plan_list[position:])
    without = run(case)
    with_extra = adjudicate(claim, patient=patient, institution=institution, formulary=formulary, plans=more)
    assert with_extra.patient <= without.patient


@EXAMPLES
@given(cases())
def test_adjudication_is_a_pure_function(case: Case) -> None:
    assert run(case) == run(case)


@EXAMPLES
@given(cases())
def test_the_output_is_the_next_claims_input(case: Case) -> None:
    """Claim 2 on claim 1's output: the year's totals are the sums of both claims' changes."""
    claim, patient, institution, formulary, plan_list = case
    first = run(case)
    following = replace(patient, accumulators=first.accumulators, units_received=first.units_received)
    second = adjudicate(claim, patient=following, institution=institution, formulary=formulary, plans=plan_list)
    for plan_id, total in second.accumulators.items():
        start = patient.accumulators.get(plan_id, ZERO_ACCUMULATOR)
        added = first.accumulator_changes.get(plan_id, ZERO_ACCUMULATOR) + second.accumulator_changes.get(
            plan_id, ZERO_ACCUMULATOR
        )
        assert start + added == total
    for drug in {line.drug for line in claim.lines}:
        units = sum(line.quantity for line in claim.lines if line.drug == drug)
        assert second.units_received[drug] == patient.units_received.get(drug, 0) + 2 * units
