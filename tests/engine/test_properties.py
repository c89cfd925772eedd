"""Properties that hold for every claim and every set of plans, checked over random ones.

The random cases carry every rule of the format: visits, pre-authorizations and consents,
amounts paid before, split lines and payment standards per package or smallest unit, a random
waterfall order of the six kinds, a personal account and the parts it covers.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from adjudication import Formulary, PlanKind
from adjudication.claims import ZERO_ACCUMULATOR
from adjudication.plans import terms_for
from tests.engine.strategies import Case, cases, plans

EXAMPLES = settings()  # the number of examples is the profile's (tests/conftest.py): dev or ci


@EXAMPLES
@given(cases())
def test_paid_before_payers_and_patient_add_up_to_the_fen_per_line_and_per_claim(case: Case) -> None:
    result = case.run()
    claim = case.claim
    donation_programmes = {plan.id for plan in case.plans if plan.in_kind is not None}
    assert result.total == sum(line.quantity * line.unit_price for line in claim.lines)
    assert result.paid_before == sum(sum(line.paid_before) for line in claim.lines)
    assert result.paid_before + result.patient + sum(payer.amount for payer in result.payers) == result.total
    for line, source in zip(result.lines, claim.lines, strict=True):
        assert line.total == source.quantity * source.unit_price
        assert line.paid_before == sum(source.paid_before)
        assert line.paid_before + sum(line.paid.values()) + line.patient == line.total
        donated_value = sum(line.paid[plan_id] for plan_id in donation_programmes)
        assert donated_value + sum(line.parts) == line.total
        assert sum(line.patient_parts) == line.patient
        assert all(0 <= before <= part for before, part in zip(source.paid_before, line.parts, strict=True))
    for payer in result.payers:
        assert sum(line.paid[payer.plan] for line in result.lines) == payer.amount


@EXAMPLES
@given(cases())
def test_the_personal_account_pays_the_lower_of_its_balance_and_the_unpaid_parts_it_covers(case: Case) -> None:
    result = case.run()
    balance = case.patient.personal_account or 0
    covered = [sum(line.patient_parts[part] for part in set(case.personal_account_covers)) for line in result.lines]
    assert result.personal_account_paid == min(balance, sum(covered))
    assert result.personal_account_paid + result.cash == result.patient
    assert result.personal_account_balance == balance - result.personal_account_paid >= 0
    assert sum(line.personal_account for line in result.lines) == result.personal_account_paid
    for line, most in zip(result.lines, covered, strict=True):
        assert 0 <= line.personal_account <= min(most, line.patient)


@EXAMPLES
@given(cases())
def test_no_amount_is_negative(case: Case) -> None:
    result = case.run()
    assert min(result.patient, result.cash, result.paid_before, result.personal_account_balance) >= 0
    for payer in result.payers:
        assert min(payer.amount, payer.base, payer.deductible_applied) >= 0
    for line in result.lines:
        assert line.patient >= 0 and min(line.parts) >= 0 and min(line.paid.values(), default=0) >= 0
        assert min(line.patient_parts) >= 0 and line.personal_account >= 0
    assert all(rebate.amount is not None and rebate.amount >= 0 for rebate in result.rebates)


@EXAMPLES
@given(cases())
def test_the_split_never_depends_on_settlement_prices_and_an_unknown_price_leaves_its_rebate_not_computable(
    case: Case,
) -> None:
    unknown = Formulary.of(
        basic=tuple(case.formulary.basic.values()),
        self_pay_first_ratio=case.formulary.self_pay_first_ratio,
        commercial=tuple(replace(entry, settlement_price=None) for entry in case.formulary.commercial.values()),
    )
    known, blind = case.run(), replace(case, formulary=unknown).run()
    assert replace(blind, rebates=()) == replace(known, rebates=())
    assert [(r.line, r.drug, r.insurer) for r in blind.rebates] == [(r.line, r.drug, r.insurer) for r in known.rebates]
    assert all(rebate.amount is None for rebate in blind.rebates)


@EXAMPLES
@given(cases())
def test_no_payer_pays_more_than_its_base_or_its_caps(case: Case) -> None:
    result = case.run()
    by_id = {plan.id: plan for plan in case.plans}
    for payer in result.payers:
        plan = by_id[payer.plan]
        assert payer.amount <= payer.base
        assert payer.deductible_applied <= payer.base
        if plan.in_kind is not None:
            continue
        caps = terms_for(plan, case.claim, case.patient, case.institution).caps
        before = case.patient.accumulators.get(plan.id, ZERO_ACCUMULATOR)
        if caps.claim is not None:
            assert payer.amount <= caps.claim
        if caps.annual is not None:
            assert payer.amount <= max(0, caps.annual - before.paid)


@EXAMPLES
@given(cases())
def test_a_plan_pays_only_with_consent_and_only_on_authorized_lines(case: Case) -> None:
    result = case.run()
    payers = {payer.plan: payer for payer in result.payers}
    for plan in case.plans:
        codes = [reason.code for reason in payers[plan.id].reasons]
        if plan.requires_consent and plan.payer not in case.patient.consents:
            assert payers[plan.id].amount == 0
            assert codes in (["NOT_ELIGIBLE"], ["NO_PATIENT_CONSENT"])
        for index, line in enumerate(case.claim.lines):
            if not plan.authorized(line):
                assert result.lines[index].paid[plan.id] == 0
    for index, line in enumerate(result.lines):
        flagged = [reason for reason in line.reasons if reason.code == "NOT_AUTHORIZED"]
        assert len(flagged) <= 1
        if flagged:
            assert any(not plan.authorized(case.claim.lines[index]) for plan in case.plans)


@EXAMPLES
@given(cases(), st.permutations(list(PlanKind)))
def test_any_waterfall_order_conserves_and_applies_plans_in_that_order(case: Case, order: list[PlanKind]) -> None:
    reordered = replace(case, waterfall=tuple(order))
    result = reordered.run()
    assert result.paid_before + result.patient + sum(payer.amount for payer in result.payers) == result.total
    applied = [payer.kind for payer in result.payers[sum(plan.in_kind is not None for plan in case.plans) :]]
    assert applied == sorted(applied, key=order.index)
    assert result.total == case.run().total


@EXAMPLES
@given(cases())
def test_accumulator_changes_are_exactly_what_the_claim_added(case: Case) -> None:
    result = case.run()
    for plan_id, after in result.accumulators.items():
        before = case.patient.accumulators.get(plan_id, ZERO_ACCUMULATOR)
        assert before + result.accumulator_changes.get(plan_id, ZERO_ACCUMULATOR) == after
    donation_programmes = {plan.id for plan in case.plans if plan.in_kind is not None}
    for payer in result.payers:
        change = result.accumulator_changes.get(payer.plan, ZERO_ACCUMULATOR)
        # donation programmes count units, not money: their accumulators never change
        assert change.paid == (0 if payer.plan in donation_programmes else payer.amount)


@EXAMPLES
@given(cases(), st.data())
def test_more_insurance_never_makes_the_patient_pay_more(case: Case, data: st.DataObject) -> None:
    # a donation programme takes units out of lines: parts paid before, or split lines of its drug,
    # could then no longer be settled; it is drawn only where the claim has neither
    plain = all(not line.split and not any(line.paid_before) for line in case.claim.lines)
    extra = data.draw(plans("EXTRA", donation=plain))
    position = data.draw(st.integers(0, len(case.plans)))
    more = replace(case, plans=(*case.plans[:position], extra, *case.plans[position:]))
    assert more.run().patient <= case.run().patient


@EXAMPLES
@given(cases())
def test_adjudication_is_a_pure_function(case: Case) -> None:
    assert case.run() == case.run()


@EXAMPLES
@given(cases(paid_before=False))
def test_the_output_is_the_next_claims_input(case: Case) -> None:
    """Claim 2 on claim 1's output: the year's totals are the sums of both claims' changes, and the
    personal account's balance after the first claim is the second's balance.
    """
    first = case.run()
    following = replace(
        case.patient,
        accumulators=first.accumulators,
        units_received=first.units_received,
        personal_account=None if case.patient.personal_account is None else first.personal_account_balance,
    )
    second = replace(case, patient=following).run()
    for plan_id, total in second.accumulators.items():
        start = case.patient.accumulators.get(plan_id, ZERO_ACCUMULATOR)
        added = first.accumulator_changes.get(plan_id, ZERO_ACCUMULATOR) + second.accumulator_changes.get(
            plan_id, ZERO_ACCUMULATOR
        )
        assert start + added == total
    for drug in {line.drug for line in case.claim.lines}:
        # units_received counts packages: a split line's smallest units add none
        packages = sum(line.quantity for line in case.claim.lines if line.drug == drug and not line.split)
        assert second.units_received[drug] == case.patient.units_received.get(drug, 0) + 2 * packages
    balance = case.patient.personal_account or 0
    assert second.personal_account_balance == balance - first.personal_account_paid - second.personal_account_paid
