"""Funding a settlement: each payer's share is drawn from its prepayment pool as far as the pool
goes, the rest is owed; a pool is never overdrawn."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adjudication import (
    Funding,
    InvariantError,
    PayerShare,
    PlanFunding,
    PlanKind,
    PoolDraw,
    fund,
    shares_by_payer,
)
from tests.engine.strategies import PAYERS, Case, cases, fen, payer_amounts

EXAMPLES = settings()  # the number of examples is the profile's (tests/conftest.py): dev or ci


def share(plan: str, payer: str, amount: int) -> PayerShare:
    return PayerShare(plan, payer, PlanKind.COMMERCIAL, amount, amount, 0, ())


@EXAMPLES
@given(payer_amounts, payer_amounts)
def test_a_draw_never_exceeds_the_pool_and_drawn_plus_receivable_is_the_share(
    shares: dict[str, int], balances: dict[str, int]
) -> None:
    funding = fund(shares, balances)
    assert [draw.payer for draw in funding.draws] == sorted(shares)
    for draw in funding.draws:
        assert draw.share_fen == shares[draw.payer]
        assert draw.balance_fen == balances.get(draw.payer, 0)
        assert 0 <= draw.drawn_fen <= draw.balance_fen
        assert draw.drawn_fen + draw.receivable_fen == draw.share_fen
        assert draw.receivable_fen >= 0
    assert funding.drawn_fen + funding.receivable_fen == funding.share_fen == sum(shares.values())


@EXAMPLES
@given(payer_amounts, payer_amounts)
def test_a_pool_is_drawn_as_far_as_it_goes_and_only_an_empty_pool_leaves_a_receivable(
    shares: dict[str, int], balances: dict[str, int]
) -> None:
    funding = fund(shares, balances)
    for draw in funding.draws:
        assert draw.drawn_fen == min(draw.share_fen, draw.balance_fen)
        if draw.receivable_fen:
            assert draw.balance_after_fen == 0


@EXAMPLES
@given(payer_amounts, payer_amounts)
def test_the_new_balance_is_the_old_less_the_draw_and_never_negative(
    shares: dict[str, int], balances: dict[str, int]
) -> None:
    funding = fund(shares, balances)
    after = funding.balances_after()
    assert set(after) == set(shares)
    for payer, balance in after.items():
        assert 0 <= balance == balances.get(payer, 0) - funding.draw_of(payer).drawn_fen


@EXAMPLES
@given(payer_amounts, payer_amounts, st.randoms(use_true_random=False))
def test_funding_is_deterministic_whatever_the_order_of_its_inputs(
    shares: dict[str, int], balances: dict[str, int], random: Random
) -> None:
    shuffled_shares, shuffled_balances = list(shares.items()), list(balances.items())
    random.shuffle(shuffled_shares)
    random.shuffle(shuffled_balances)
    assert fund(dict(shuffled_shares), dict(shuffled_balances)) == fund(shares, balances)


@EXAMPLES
@given(payer_amounts)
def test_with_no_money_in_the_pools_every_share_is_owed(shares: dict[str, int]) -> None:
    for funding in (fund(shares, {}), fund(shares, dict.fromkeys(shares, 0))):
        assert funding.drawn_fen == 0
        assert {draw.payer: draw.receivable_fen for draw in funding.draws} == shares


@EXAMPLES
@given(cases(), payer_amounts)
def test_plans_of_one_payer_draw_on_its_one_pool_in_waterfall_order(case: Case, balances: dict[str, int]) -> None:
    """The per-plan figures are those of drawing plan by plan, in the engine's order, on a pool
    shared by the payer's plans; and they add up to the payer's draw."""
    result = case.run()
    funding = fund(shares_by_payer(result.payers), balances)
    by_plan = funding.over_plans(result.payers)
    left = dict(balances)
    for payer, plan in zip(result.payers, by_plan, strict=True):
        drawn = min(payer.amount, left.get(payer.payer, 0))
        left[payer.payer] = left.get(payer.payer, 0) - drawn
        assert plan == PlanFunding(payer.plan, payer.payer, payer.amount, drawn, payer.amount - drawn)
    for draw in funding.draws:
        assert sum(plan.drawn_fen for plan in by_plan if plan.payer == draw.payer) == draw.drawn_fen
        assert sum(plan.receivable_fen for plan in by_plan if plan.payer == draw.payer) == draw.receivable_fen


@EXAMPLES
@given(cases())
def test_a_payers_share_is_its_plans_amounts_summed(case: Case) -> None:
    result = case.run()
    shares = shares_by_payer(result.payers)
    assert set(shares) == {payer.payer for payer in result.payers}
    assert result.paid_before + sum(shares.values()) + result.patient == result.total


def test_a_pool_that_runs_dry_leaves_the_rest_owed() -> None:
    funding = fund({"INS-A": 100_000, "NHSA-310100": 250_000}, {"INS-A": 60_000, "NHSA-310100": 900_000})
    assert funding.draws == (
        PoolDraw("INS-A", share_fen=100_000, balance_fen=60_000, drawn_fen=60_000, receivable_fen=40_000),
        PoolDraw("NHSA-310100", share_fen=250_000, balance_fen=900_000, drawn_fen=250_000, receivable_fen=0),
    )
    assert dict(funding.balances_after()) == {"INS-A": 0, "NHSA-310100": 650_000}


def test_a_payer_without_a_pool_at_the_institution_owes_its_whole_share() -> None:
    assert fund({"MA-UNION": 5_000}, {"INS-A": 1_000_000}).draws == (PoolDraw("MA-UNION", 5_000, 0, 0, 5_000),)


def test_the_first_plan_of_a_payer_draws_first() -> None:
    plans = (share("BASIC", "NHSA-310100", 70_000), share("SERIOUS", "NHSA-310100", 50_000), share("X", "INS-A", 0))
    funding = fund(shares_by_payer(plans), {"NHSA-310100": 90_000})
    assert funding.over_plans(plans) == (
        PlanFunding("BASIC", "NHSA-310100", 70_000, 70_000, 0),
        PlanFunding("SERIOUS", "NHSA-310100", 50_000, 20_000, 30_000),
        PlanFunding("X", "INS-A", 0, 0, 0),
    )


def test_plans_that_do_not_add_up_to_the_funded_shares_are_refused() -> None:
    funding = fund({"INS-A": 1_000}, {"INS-A": 1_000})
    with pytest.raises(InvariantError):
        funding.over_plans((share("A", "INS-A", 999),))
    with pytest.raises(InvariantError):
        funding.over_plans((share("A", "INS-A", 1_000), share("B", "INS-B", 1)))


@pytest.mark.parametrize(("shares", "balances"), [({"INS-A": -1}, {}), ({"INS-A": 1}, {"INS-A": -1})])
def test_a_negative_share_or_balance_is_refused(shares: dict[str, int], balances: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        fund(shares, balances)


@given(st.sampled_from(PAYERS), fen, fen)
def test_a_funding_that_breaks_a_rule_cannot_be_built(payer: str, share_fen: int, balance_fen: int) -> None:
    overdrawn = PoolDraw(payer, share_fen, balance_fen, balance_fen + 1, share_fen - balance_fen - 1)
    with pytest.raises(InvariantError):
        Funding((overdrawn,))
    with pytest.raises(InvariantError):
        Funding((PoolDraw(payer, share_fen, balance_fen, 0, share_fen + 1),))
    draw = PoolDraw(payer, 0, 0, 0, 0)
    with pytest.raises(InvariantError):
        Funding((draw, draw))
