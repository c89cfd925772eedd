"""The ledger's postings: every transaction balances to the fen, a reversal is the exact opposite
of its settlement, a refund nets to the difference of two settlements."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adjudication import InvariantError, fund
from adjudication.funding import Funding, shares_by_payer
from adjudication.ledger import (
    REVERSAL_OF,
    Posting,
    Why,
    balanced,
    grant_postings,
    institution_claims,
    net_by_account,
    patient_cash,
    payable,
    pool,
    refund_postings,
    reversal_postings,
    settlement_postings,
    transfer,
    treasury,
)
from tests.engine.strategies import PAYERS, Case, cases, fen, payer_amounts

EXAMPLES = settings()  # the number of examples is the profile's (tests/conftest.py): dev or ci

institutions = st.sampled_from(("H310001", "P310002"))
people = st.sampled_from(("310100199001010011", "P-0001"))
fundings = st.builds(fund, payer_amounts, payer_amounts)


def minus(left: dict[str, int], right: dict[str, int]) -> dict[str, int]:
    difference = {account: left.get(account, 0) - right.get(account, 0) for account in left.keys() | right.keys()}
    return {account: amount for account, amount in sorted(difference.items()) if amount}


@EXAMPLES
@given(institutions, people, fen, fundings)
def test_every_settlement_balances_and_credits_the_institution_the_whole_bill(
    institution: str, person: str, patient_fen: int, funding: Funding
) -> None:
    postings = settlement_postings(institution, person, patient_fen, funding)
    assert sum(posting.amount_fen for posting in postings) == 0
    assert all(posting.amount_fen for posting in postings)
    credited = net_by_account(postings).get(institution_claims(institution), 0)
    assert credited == patient_fen + funding.share_fen


@EXAMPLES
@given(institutions, people, fen, fundings)
def test_each_account_of_a_settlement_moves_by_its_figure(
    institution: str, person: str, patient_fen: int, funding: Funding
) -> None:
    moved = net_by_account(settlement_postings(institution, person, patient_fen, funding))
    expected = {institution_claims(institution): patient_fen + funding.share_fen, patient_cash(person): -patient_fen}
    for draw in funding.draws:
        expected[pool(draw.payer, institution)] = -draw.drawn_fen
        expected[payable(draw.payer, institution)] = -draw.receivable_fen
    assert moved == {account: amount for account, amount in sorted(expected.items()) if amount}


@EXAMPLES
@given(cases(), payer_amounts, institutions, people)
def test_the_settlement_of_any_adjudication_balances_and_credits_what_it_pays(
    case: Case, balances: dict[str, int], institution: str, person: str
) -> None:
    result = case.run()
    postings = settlement_postings(institution, person, result.patient, fund(shares_by_payer(result.payers), balances))
    assert sum(posting.amount_fen for posting in postings) == 0
    paid_now = result.total - result.paid_before  # what earlier settlements paid is not paid again
    assert net_by_account(postings).get(institution_claims(institution), 0) == paid_now


@EXAMPLES
@given(institutions, people, fen, fundings)
def test_a_reversal_negates_its_settlement_exactly_under_the_reversal_codes(
    institution: str, person: str, patient_fen: int, funding: Funding
) -> None:
    settled = settlement_postings(institution, person, patient_fen, funding)
    reversal = reversal_postings(settled)
    assert sum(posting.amount_fen for posting in reversal) == 0
    assert net_by_account(settled + reversal) == {}
    assert reversal == tuple(
        Posting(posting.account, -posting.amount_fen, REVERSAL_OF[posting.why]) for posting in settled
    )


@EXAMPLES
@given(st.sampled_from(PAYERS), institutions, fen)
def test_a_grant_moves_money_from_the_payers_treasury_into_its_pool(payer: str, institution: str, amount: int) -> None:
    postings = grant_postings(payer, institution, amount)
    assert sum(posting.amount_fen for posting in postings) == 0
    assert {posting.why for posting in postings} <= {Why.PREPAYMENT_GRANT}
    assert net_by_account(postings) == ({pool(payer, institution): amount, treasury(payer): -amount} if amount else {})


@EXAMPLES
@given(institutions, people, fen, payer_amounts, payer_amounts, st.data())
def test_a_refund_nets_to_the_remainder_less_the_original(
    institution: str,
    person: str,
    patient_fen: int,
    shares: dict[str, int],
    balances: dict[str, int],
    data: st.DataObject,
) -> None:
    """Given a settlement; when part of it is refunded; then the refund's two transactions each
    balance, and together move each account by the remainder's figure less the original's."""
    original = settlement_postings(institution, person, patient_fen, fund(shares, balances))
    remainder_patient_fen = data.draw(st.integers(0, patient_fen))
    remainder_shares = {payer: data.draw(st.integers(0, share)) for payer, share in shares.items()}
    remainder_funding = fund(remainder_shares, balances)  # the pools as they were, the original's draws returned
    refund = refund_postings(original, institution, person, remainder_patient_fen, remainder_funding)
    assert sum(posting.amount_fen for posting in refund.reversal) == 0
    assert sum(posting.amount_fen for posting in refund.remainder) == 0
    remainder = settlement_postings(institution, person, remainder_patient_fen, remainder_funding)
    assert refund.remainder == remainder
    assert net_by_account(refund.postings) == minus(net_by_account(remainder), net_by_account(original))


def test_account_names_are_spelled_as_they_are_stored() -> None:
    assert treasury("INS-A") == "payer:INS-A:treasury"
    assert pool("INS-A", "H310001") == "payer:INS-A:pool@H310001"
    assert payable("INS-A", "H310001") == "payer:INS-A:payable@H310001"
    assert institution_claims("H310001") == "institution:H310001:claims"
    assert patient_cash("P-0001") == "patient:P-0001:cash"


def test_why_codes_are_spelled_as_they_are_stored() -> None:
    assert [why.value for why in Why] == [
        "PREPAYMENT_GRANT",
        "PATIENT_SHARE",
        "POOL_DRAW",
        "RECEIVABLE",
        "PATIENT_REFUND",
        "POOL_RETURN",
        "RECEIVABLE_CANCELLED",
    ]


def test_a_settlement_pays_the_institution_from_the_patient_the_pool_and_the_payable() -> None:
    funding = fund({"INS-A": 30_000, "NHSA-310100": 50_000}, {"INS-A": 10_000, "NHSA-310100": 80_000})
    claims = "institution:H310001:claims"
    assert settlement_postings("H310001", "P-0001", 20_000, funding) == (
        Posting("patient:P-0001:cash", -20_000, Why.PATIENT_SHARE),
        Posting(claims, 20_000, Why.PATIENT_SHARE),
        Posting("payer:INS-A:pool@H310001", -10_000, Why.POOL_DRAW),
        Posting(claims, 10_000, Why.POOL_DRAW),
        Posting("payer:INS-A:payable@H310001", -20_000, Why.RECEIVABLE),
        Posting(claims, 20_000, Why.RECEIVABLE),
        Posting("payer:NHSA-310100:pool@H310001", -50_000, Why.POOL_DRAW),
        Posting(claims, 50_000, Why.POOL_DRAW),
    )


def test_an_unbalanced_transaction_is_refused() -> None:
    with pytest.raises(InvariantError):
        balanced([Posting("patient:P-0001:cash", -100, Why.PATIENT_SHARE)])


def test_a_transfer_of_a_negative_amount_is_refused_and_of_nothing_posts_nothing() -> None:
    with pytest.raises(ValueError):
        transfer("a", "b", -1, Why.PATIENT_SHARE)
    assert transfer("a", "b", 0, Why.PATIENT_SHARE) == ()


@pytest.mark.parametrize("why", [Why.PREPAYMENT_GRANT, Why.PATIENT_REFUND, Why.POOL_RETURN, Why.RECEIVABLE_CANCELLED])
def test_only_a_settlements_postings_are_reversed(why: Why) -> None:
    with pytest.raises(ValueError):
        reversal_postings(transfer("a", "b", 100, why))
