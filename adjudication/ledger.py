"""The double-entry ledger as values: accounts, why money moved, and the postings of a
settlement, a reversal, a refund and a prepayment grant.

A posting moves integer fen into (positive, a credit) or out of (negative, a debit) one
account; every transaction's postings sum to zero, and `balanced` refuses a set that does not.
Accounts (the names are stored: never change their spelling):

    payer:{payer}:treasury              the payer's own money, from which prepayments are granted
    payer:{payer}:pool@{institution}    a prepayment pool (预付金): grants in, draws out, returns in
    payer:{payer}:payable@{institution} what the payer owes the institution beyond its pool
    institution:{institution}:claims    what the institution was paid for the drugs it dispensed
    patient:{psn_no}:cash               what the patient paid at the window

The patient's share is one figure, paid in cash. When the personal account (个人账户) pays part
of it, `settlement_postings` takes that part as one more argument and moves it from an account
of the basic fund's holding for the person (e.g. `payer:{fund}:personal@{psn_no}`) under a code
of its own, with its reversal code in `REVERSAL_OF`; the cash posting keeps the rest. Medical
assistance (医疗救助) is a payer like any other: its share is funded and posted by payer code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from adjudication.errors import InvariantError
from adjudication.funding import Funding
from adjudication.money import Fen


class Why(StrEnum):
    """Why money moved (stored as the posting's code). A reversal posts the exact opposite under
    the opposite code, so that a statement tells a refund from a charge.
    """

    PREPAYMENT_GRANT = "PREPAYMENT_GRANT"
    PATIENT_SHARE = "PATIENT_SHARE"
    POOL_DRAW = "POOL_DRAW"
    RECEIVABLE = "RECEIVABLE"
    PATIENT_REFUND = "PATIENT_REFUND"
    POOL_RETURN = "POOL_RETURN"
    RECEIVABLE_CANCELLED = "RECEIVABLE_CANCELLED"


REVERSAL_OF: Mapping[Why, Why] = MappingProxyType(
    {
        Why.PATIENT_SHARE: Why.PATIENT_REFUND,
        Why.POOL_DRAW: Why.POOL_RETURN,
        Why.RECEIVABLE: Why.RECEIVABLE_CANCELLED,
    }
)
"""The code a settlement's posting is reversed under. Grants and reversals are not reversed."""


def treasury(payer: str) -> str:
    return f"payer:{payer}:treasury"


def pool(payer: str, institution: str) -> str:
    return f"payer:{payer}:pool@{institution}"


def payable(payer: str, institution: str) -> str:
    return f"payer:{payer}:payable@{institution}"


def institution_claims(institution: str) -> str:
    return f"institution:{institution}:claims"


def patient_cash(psn_no: str) -> str:
    return f"patient:{psn_no}:cash"


@dataclass(frozen=True, slots=True)
class Posting:
    """`amount_fen` into `account` (a credit when positive, a debit when negative), for `why`."""

    account: str
    amount_fen: Fen
    why: Why


def transfer(debit: str, credit: str, amount_fen: Fen, why: Why) -> tuple[Posting, ...]:
    """Move `amount_fen` from `debit` to `credit`: two postings, or none for a zero amount."""
    if amount_fen < 0:
        raise ValueError(f"a transfer moves a non-negative amount, not {amount_fen}")
    if not amount_fen:
        return ()
    return (Posting(debit, -amount_fen, why), Posting(credit, amount_fen, why))


def balanced(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    """The postings of one transaction, refused (InvariantError) unless they sum to zero: an
    unbalanced transaction would create or destroy money, which is always a bug.
    """
    checked = tuple(postings)
    total = sum(posting.amount_fen for posting in checked)
    if total:
        raise InvariantError(f"an unbalanced ledger transaction: its postings sum to {total} fen")
    return checked


def net_by_account(postings: Iterable[Posting]) -> dict[str, Fen]:
    """What the postings add to each account, accounts netting to zero left out, by name."""
    totals: dict[str, Fen] = {}
    for posting in postings:
        totals[posting.account] = totals.get(posting.account, 0) + posting.amount_fen
    return {account: amount for account, amount in sorted(totals.items()) if amount}


def settlement_postings(institution: str, person: str, patient_fen: Fen, funding: Funding) -> tuple[Posting, ...]:
    """The transaction of one settlement: the institution's claims account is credited the whole
    bill, from the patient's cash (the patient's share, `person` being the psn_no), from each
    payer's pool (what it drew) and from each payer's payable (what it owes beyond its pool).
    """
    claims = institution_claims(institution)
    postings = list(transfer(patient_cash(person), claims, patient_fen, Why.PATIENT_SHARE))
    for draw in funding.draws:
        postings += transfer(pool(draw.payer, institution), claims, draw.drawn_fen, Why.POOL_DRAW)
        postings += transfer(payable(draw.payer, institution), claims, draw.receivable_fen, Why.RECEIVABLE)
    return balanced(postings)


def reversal_postings(postings: Sequence[Posting]) -> tuple[Posting, ...]:
    """The transaction that reverses a settlement's: each posting negated, in the same order,
    under its reversal code (PATIENT_SHARE → PATIENT_REFUND, POOL_DRAW → POOL_RETURN,
    RECEIVABLE → RECEIVABLE_CANCELLED). Only a settlement's postings are reversed.
    """
    reversed_postings: list[Posting] = []
    for posting in postings:
        code = REVERSAL_OF.get(posting.why)
        if code is None:
            raise ValueError(f"a {posting.why} posting is not a settlement's: it has no reversal")
        reversed_postings.append(Posting(posting.account, -posting.amount_fen, code))
    return balanced(reversed_postings)


def grant_postings(payer: str, institution: str, amount_fen: Fen) -> tuple[Posting, ...]:
    """The transaction of a prepayment grant: from the payer's treasury into its pool here."""
    return balanced(transfer(treasury(payer), pool(payer, institution), amount_fen, Why.PREPAYMENT_GRANT))


@dataclass(frozen=True, slots=True)
class Refund:
    """A partial refund (退费) as two transactions: the original settlement reversed in full, and
    the remainder (what the patient keeps) settled anew. Each balances on its own and belongs to
    its own settlement; together they net, account by account, to the remainder's postings less
    the original's, so a refund is never a third way of moving money.
    """

    reversal: tuple[Posting, ...]
    remainder: tuple[Posting, ...]

    @property
    def postings(self) -> tuple[Posting, ...]:
        return self.reversal + self.remainder


def refund_postings(
    original: Sequence[Posting], institution: str, person: str, patient_fen: Fen, funding: Funding
) -> Refund:
    """The postings of a partial refund of the settlement whose postings are `original`.

    `patient_fen` and `funding` are the remainder's: its patient share and its payers' shares
    funded on the pools' balances once the original's draws are returned (current balance plus
    what the original drew), so that the remainder draws first on what the original had drawn.
    """
    return Refund(reversal_postings(original), settlement_postings(institution, person, patient_fen, funding))
