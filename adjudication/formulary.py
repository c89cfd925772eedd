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

from adjudication.claims import ClaimLine, Visit
from adjudication.errors import ErrorCode, InputError
from adjudication.money import Fen, Ratio, apply_ratio, round_half_up


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


class StandardPer(StrEnum):
    """The unit a payment standard is stated in: a package (the default) or a smallest unit."""

    PACKAGE = "package"
    SMALLEST = "smallest"


@dataclass(frozen=True, slots=True)
class BasicEntry:
    """A drug of the basic formulary (医保目录) as in force on the service date.

    `payment_standard` (支付标准) is per package, or per smallest unit when `standard_per` says so;
    None means the drug has none and the whole price is allowed. `package_units` (smallest units
    to a package) converts between the two, for a line in the other unit than the standard.
    `self_pay_first_ratio` is the entry's own pay-first share, which overrides the formulary's
    share for category B (regions set their own for some drugs, of any category). Empty
    restrictions restrict nothing.
    """

    drug: str
    category: Category
    payment_standard: Fen | None = None
    self_pay_first_ratio: Ratio | None = None
    negotiated: bool = False
    dual_channel: bool = False
    restricted_diagnoses: tuple[str, ...] = ()
    restricted_visits: frozenset[Visit] = frozenset()
    standard_per: StandardPer = StandardPer.PACKAGE
    package_units: int | None = None

    def needs_package_units(self, split: bool) -> bool:
        """Whether a line (`split` or of packages) meets the standard in the other unit."""
        if self.payment_standard is None:
            return False
        return split if self.standard_per is StandardPer.PACKAGE else not split

    def allowed(self, units: int, unit_price: Fen, split: bool) -> Fen:
        """The allowed amount of `units` at `unit_price`: units × the lower of the unit price and
        the payment standard, both in the line's unit. A per-package standard meets a split line
        as the exact quotient standard ÷ package_units, and the product is rounded half up to the
        fen once per line, never as a rounded per-unit standard times the quantity.
        """
        standard = self.payment_standard
        if standard is None:
            return units * unit_price
        if not self.needs_package_units(split):
            return units * min(unit_price, standard)
        if self.package_units is None:
            raise ValueError(f"{self.drug}: converting the payment standard needs package_units")
        if self.standard_per is StandardPer.SMALLEST:  # a line of packages, a per-tablet standard
            return units * min(unit_price, standard * self.package_units)
        if unit_price * self.package_units <= standard:  # a split line under the per-unit quotient
            return units * unit_price
        return round_half_up(units * standard, self.package_units)


@dataclass(frozen=True, slots=True)
class CommercialEntry:
    """A drug of the commercial innovative-drug catalogue under one insurer.

    `settlement_price` is that insurer's confidential negotiated price per package. Claims are
    split on list prices; this price only derives the manufacturer's rebate to the insurer.
    `package_units` converts it for split lines (else the basic entry's is used). None: the
    caller could not read it (its insurer's key was destroyed): the drug is still in the
    catalogue, and the rebate on it is not computable.
    """

    drug: str
    insurer: str
    settlement_price: Fen | None
    package_units: int | None = None


_EMPTY_BASIC: Mapping[str, BasicEntry] = MappingProxyType({})
_EMPTY_COMMERCIAL: Mapping[tuple[str, str], CommercialEntry] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Formulary:
    """One version of the catalogues: basic entries by drug, commercial entries by (drug, insurer),
    each mapping in the order the entries are listed (errors name an entry by that position).
    """

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

    def check_units(self, line: ClaimLine, path: str, donated_drugs: frozenset[str]) -> None:
        """Refuse a line whose units cannot be settled: a split line of a drug a donation
        programme gives (programmes count packages), and a line that needs `package_units` to
        meet its payment standard or its settlement price where no entry states them.
        """
        if line.split and line.drug in donated_drugs:
            raise InputError(
                f"{path}.split",
                f"{line.drug} is donated by an in-kind programme, which counts packages: a split line of it cannot be "
                "settled",
            )
        entry = self.basic.get(line.drug)
        if entry is not None and entry.package_units is None and entry.needs_package_units(line.split):
            position = list(self.basic).index(line.drug)
            unit = "a split line" if line.split else "a line of packages"
            raise InputError(
                f"formulary.basic[{position}].package_units",
                f"is required: {path} is {unit} of {line.drug}, whose payment standard is per "
                f"{'package' if entry.standard_per is StandardPer.PACKAGE else 'smallest unit'}",
                ErrorCode.MISSING_FIELD,
            )
        if not line.split or (entry is not None and entry.package_units is not None):
            return
        for position, (drug, insurer) in enumerate(self.commercial):
            if drug == line.drug and self.commercial[(drug, insurer)].package_units is None:
                raise InputError(
                    f"formulary.commercial[{position}].package_units",
                    f"is required: {path} is a split line of {drug}, whose settlement price is per package, and its "
                    "basic entry states no package_units",
                    ErrorCode.MISSING_FIELD,
                )

    def parts(self, line: ClaimLine, scope: Scope, units: int) -> list[Fen]:
        """The four parts of `units` units of `line`, indexed by `Part`.

        Out of scope, the whole amount is out_of_scope. In scope, what is above the allowed
        amount is above_standard; the pay-first share of the allowed amount (rounded half up per
        line) is self_pay_first; the rest is in_scope.
        """
        amount = units * line.unit_price
        if scope is not Scope.IN_SCOPE:
            return [0, 0, 0, amount]
        entry = self.basic[line.drug]
        allowed = entry.allowed(units, line.unit_price, line.split)
        share = entry.self_pay_first_ratio
        if share is None:
            share = self.self_pay_first_ratio if entry.category is Category.B else 0
        self_pay_first = apply_ratio(allowed, share) if share else 0
        return [allowed - self_pay_first, self_pay_first, amount - allowed, 0]

    def rebate(self, line: ClaimLine, insurer: str, units: int) -> Fen | None:
        """What the manufacturer owes `insurer` on `units` of `line`: units × (list − settlement
        price), never below zero; None when the drug is not in its catalogue, or when its
        settlement price is unknown (not computable). The settlement price is per package; on a
        split line it is divided by package_units (the commercial entry's, else the basic
        entry's) and the product rounded half up once per line.
        """
        entry = self.commercial.get((line.drug, insurer))
        if entry is None or entry.settlement_price is None:
            return None
        if not line.split:
            return units * max(0, line.unit_price - entry.settlement_price)
        package_units = entry.package_units
        if package_units is None:
            basic = self.basic.get(line.drug)
            package_units = None if basic is None else basic.package_units
        if package_units is None:
            raise ValueError(f"{line.drug}: a split line's rebate needs package_units")
        above = units * (line.unit_price * package_units - entry.settlement_price)
        return round_half_up(above, package_units) if above > 0 else 0
