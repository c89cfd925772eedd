"""How a settlement's payer shares are funded at the institution: drawn from each payer's
prepayment pool (预付金) as far as it goes, the rest owed to the institution (a receivable).

A payer has one pool per institution, whatever its plans: a payer's plans on one claim draw on
that one pool, in waterfall order. `fund` decides per payer; `Funding.over_plans` spreads each
payer's draw over its plans for the per-plan record. Pure: the caller reads (and locks) the
pools, calls `fund`, and writes what it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from adjudication.errors import InvariantError
from adjudication.money import Fen
from adjudication.results import PayerShare


@dataclass(frozen=True, slots=True)
class PoolDraw:
    """One payer's share of one settlement and how it is funded: `drawn_fen` from the pool,
    whose balance was `balance_fen` before the draw, and `receivable_fen` owed beyond it.
    """

    payer: str
    share_fen: Fen
    balance_fen: Fen
    drawn_fen: Fen
    receivable_fen: Fen

    @property
    def balance_after_fen(self) -> Fen:
        """The pool's balance once this draw is taken."""
        return self.balance_fen - self.drawn_fen


@dataclass(frozen=True, slots=True)
class PlanFunding:
    """One plan's share, funded: the part of its payer's draw that falls to it, the rest owed."""

    plan: str
    payer: str
    amount_fen: Fen
    drawn_fen: Fen
    receivable_fen: Fen


@dataclass(frozen=True, slots=True)
class Funding:
    """The draws of one settlement, one per payer in payer-code order.

    Built by `fund`; constructing one that breaks a rule (a draw beyond its pool or its share,
    drawn + receivable not the share, payers out of order) raises InvariantError, so a
    `Funding` in hand always holds.
    """

    draws: tuple[PoolDraw, ...]

    def __post_init__(self) -> None:
        payers = [draw.payer for draw in self.draws]
        if payers != sorted(set(payers)):
            raise InvariantError(f"a funding lists each payer once, in code order, not {payers}")
        for draw in self.draws:
            if min(draw.share_fen, draw.balance_fen, draw.drawn_fen, draw.receivable_fen) < 0:
                raise InvariantError(f"payer {draw.payer}: a negative amount in {draw}")
            if draw.drawn_fen > min(draw.share_fen, draw.balance_fen):
                raise InvariantError(f"payer {draw.payer}: draws more than its share or its pool")
            if draw.drawn_fen + draw.receivable_fen != draw.share_fen:
                raise InvariantError(f"payer {draw.payer}: drawn + receivable is not its share")

    @property
    def share_fen(self) -> Fen:
        return sum(draw.share_fen for draw in self.draws)

    @property
    def drawn_fen(self) -> Fen:
        return sum(draw.drawn_fen for draw in self.draws)

    @property
    def receivable_fen(self) -> Fen:
        return sum(draw.receivable_fen for draw in self.draws)

    def draw_of(self, payer: str) -> PoolDraw:
        """The draw of `payer`; KeyError when the payer has no share in this settlement."""
        for draw in self.draws:
            if draw.payer == payer:
                return draw
        raise KeyError(payer)

    def balances_after(self) -> Mapping[str, Fen]:
        """Each pool's balance once the settlement is funded, by payer code."""
        return MappingProxyType({draw.payer: draw.balance_after_fen for draw in self.draws})

    def over_plans(self, shares: Sequence[PayerShare]) -> tuple[PlanFunding, ...]:
        """Spread each payer's draw over its plans in the order given (the waterfall's): the
        first plan draws first, a later one only what the earlier left in the pool.

        `shares` are the plans whose amounts summed to this funding's shares (an `Adjudication`'s
        `payers`; a plan that paid nothing may belong to a payer left out); anything else is
        refused, since the per-plan record would then not add up.
        """
        left = {draw.payer: draw.drawn_fen for draw in self.draws}
        owed = {draw.payer: draw.share_fen for draw in self.draws}
        funded: list[PlanFunding] = []
        for share in shares:
            if share.payer not in left:
                if share.amount:
                    raise InvariantError(f"plan {share.plan}: payer {share.payer} is not in this funding")
                funded.append(PlanFunding(share.plan, share.payer, 0, 0, 0))
                continue
            drawn = min(share.amount, left[share.payer])
            left[share.payer] -= drawn
            owed[share.payer] -= share.amount
            funded.append(PlanFunding(share.plan, share.payer, share.amount, drawn, share.amount - drawn))
        if any(owed.values()):
            raise InvariantError("the plans' amounts do not add up to the payers' shares of this funding")
        return tuple(funded)


def shares_by_payer(shares: Iterable[PayerShare]) -> dict[str, Fen]:
    """What each payer owes on a claim: its plans' amounts summed, in payer-code order. A payer
    whose plans paid nothing is listed with 0 (it draws nothing and owes nothing).
    """
    totals: dict[str, Fen] = {}
    for share in shares:
        totals[share.payer] = totals.get(share.payer, 0) + share.amount
    return dict(sorted(totals.items()))


def fund(shares: Mapping[str, Fen], balances: Mapping[str, Fen]) -> Funding:
    """Fund each payer's share from its prepayment pool here: drawn = min(share, balance), the
    rest a receivable. A pool is only ever drawn down to zero, never below; a payer without a
    pool (missing from `balances`) has a balance of 0 and owes its whole share.

    `shares` by payer code, zero shares included or not (a zero share draws nothing);
    `balances` by payer code, extra payers ignored. The result lists payers in code order,
    whatever the order of the mappings.
    """
    draws: list[PoolDraw] = []
    for payer in sorted(shares):
        share, balance = shares[payer], balances.get(payer, 0)
        if share < 0:
            raise ValueError(f"payer {payer}: a share is never negative, not {share}")
        if balance < 0:
            raise ValueError(f"payer {payer}: a pool balance is never negative, not {balance}")
        drawn = min(share, balance)
        draws.append(PoolDraw(payer, share, balance, drawn, share - drawn))
    return Funding(tuple(draws))
