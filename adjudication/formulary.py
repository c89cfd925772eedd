"""The basic formulary, the commercial innovative-drug catalogue, and the four parts of a line.

Basic insurance sees a line in four parts that together equal its amount: what is out of scope,
what is above the payment standard, the pay-first share (先行自付) and the in-scope rest. Every
plan's base is made of these parts, so they are computed once per line, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from types import MappingProxyType

from adjudication.claims import Visit
from adjudication.money import Fen, Ratio, apply_ratio


class Category(StrEnum):
    A = "A"  # 甲类: paid within scope with no pay-first share
    B = "B"  # 乙类: the patient first pays the region's share


class Part(IntEnum):
    """The four parts of a line, in the order a plan's payment is taken from them."""

    IN_SCOPE = 0
    SELF_PAY_FIRST = 1
    ABOVE_STANDARD = 2
    OUT_OF_SCOPE = 3

    @property
    def key(self) -> str:
        return self.name.lower()


PARTS: tuple[Part, ...] = tuple(Part)


class Scope(StrEnum):
    """Why a line is, or is not, within basic insurance's scope."""

    IN_SCOPE = "in_scope"
    NOT_IN_CATALOGUE = "NOT_IN_CATALOGUE"
    RESTRICTED_SCOPE = "RESTRICTED_SCOPE"
    NOT_DUAL_CHANNEL = "NOT_DUAL_CHANNEL"


@dataclass(frozen=True, slots=True)
class BasicEntry:
    """A drug of the basic formulary (医保目录) as in force on the service date.

    `payment_standard` is per unit (支付标准); None means the drug has none and the whole price
    is allowed. `self_pay_first_ratio` is the entry's own pay-first share, which overrides the
    formulary's share for category B (regions set their own for some drugs, of any category).
    Empty restrictions restrict nothing.
    """

    drug: str
    category: Category
    payment_standard: Fen | None = None
    self_pay_first_ratio: Ratio | None = None
    negotiated: bool = False
    dual_channel: bool = False
    restricted_diagnoses: tuple[str, ...] = ()
    restricted_visits: frozenset[Visit] = frozenset()


@dataclass(frozen=True, slots=True)
class CommercialEntry:
    """A drug of the commercial innovative-drug catalogue under one insurer.

    `settlement_price` is that insurer's confidential negotiated price per unit. Claims are split
    on list prices; this price only derives the manufacturer's rebate to the insurer. None: the
    caller could not read it (its insurer's key was destroyed): the drug is still in the
    catalogue, and the rebate on it is not computable.
    """

    drug: str
    insurer: str
    settlement_price: Fen | None


_EMPTY_BASIC: Mapping[str, BasicEntry] = MappingProxyType({})
_EMPTY_COMMERCIAL: Mapping[tuple[str, str], CommercialEntry] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Formulary:
    """One version of the catalogues: basic entries by drug, commercial entries by (drug, insurer)."""

    basic: Mapping[str, BasicEntry] = field(default_factory=lambda: _EMPTY_BASIC)
    self_pay_first_ratio: Ratio = 0
    commercial: Mapping[tuple[str, str], CommercialEntry] = field(default_factory=lambda: _EMPTY_COMMERCIAL)

    @classmethod
    def of(
        cls,
        basic: tuple[BasicEntry, ...] = (),
        self_pay_first_ratio: Ratio = 0,
        commercial: tuple[CommercialEntry, ...] = (),
    ) -> Formulary:
        return cls(
            basic=MappingProxyType({entry.drug: entry for entry in basic}),
            self_pay_first_ratio=self_pay_first_ratio,
            commercial=MappingProxyType({(entry.drug, entry.insurer): entry for entry in commercial}),
        )

    def scope(self, drug: str, visit: Visit, diagnoses: tuple[str, ...]) -> Scope:
        """Whether basic insurance covers `drug` on this visit for these diagnoses, and if not why."""
        entry = self.basic.get(drug)
        if entry is None:
            return Scope.NOT_IN_CATALOGUE
        if visit is Visit.PHARMACY and not entry.dual_channel:
            return Scope.NOT_DUAL_CHANNEL
        if entry.restricted_visits and visit not in entry.restricted_visits:
            return Scope.RESTRICTED_SCOPE
        if entry.restricted_diagnoses and not any(
            diagnosis.startswith(entry.restricted_diagnoses) for diagnosis in diagnoses
        ):
            return Scope.RESTRICTED_SCOPE
        return Scope.IN_SCOPE

    def parts(self, drug: str, scope: Scope, units: int, unit_price: Fen) -> list[Fen]:
        """The four parts of `units` units at `unit_price`, indexed by `Part`.

        Out of scope, the whole amount is out_of_scope. In scope, the price above the payment
        standard is above_standard; the pay-first share of the allowed amount (rounded half up
        per line) is self_pay_first; the rest is in_scope.
        """
        if scope is not Scope.IN_SCOPE:
            return [0, 0, 0, units * unit_price]
        entry = self.basic[drug]
        standard = entry.payment_standard
        allowed_price = unit_price if standard is None or unit_price <= standard else standard
        allowed = units * allowed_price
        share = entry.self_pay_first_ratio
        if share is None:
            share = self.self_pay_first_ratio if entry.category is Category.B else 0
        self_pay_first = apply_ratio(allowed, share) if share else 0
        return [allowed - self_pay_first, self_pay_first, units * (unit_price - allowed_price), 0]
