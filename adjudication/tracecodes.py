"""Drug traceability codes (药品追溯码): the rules a scanned code must follow, and how a split
package (拆零) is dispensed in parts.

A code is 20 digits, one per package; its first 7 digits identify the product and must be one of
the drug's registered prefixes. A line dispenses whole packages (one code per package) or, when
marked split, smallest units taken from the package(s) whose codes it carries. This module only
judges what can be judged from the line itself; whether a package is still unsold is the
caller's state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

CODE_LENGTH = 20
PREFIX_LENGTH = 7


class Problem(StrEnum):
    """What is wrong with a line's codes (each also an anomaly kind when accepted and flagged)."""

    MALFORMED_CODE = "MALFORMED_CODE"
    PRODUCT_MISMATCH = "PRODUCT_MISMATCH"
    CODE_COUNT_MISMATCH = "CODE_COUNT_MISMATCH"
    DUPLICATE_CODE = "DUPLICATE_CODE"
    NO_CODE = "NO_CODE"


@dataclass(frozen=True, slots=True)
class Finding:
    problem: Problem
    code: str | None
    message: str


def is_well_formed(code: str) -> bool:
    return len(code) == CODE_LENGTH and code.isascii() and code.isdigit()


def check_line(
    codes: Sequence[str], quantity: int, *, split: bool, package_units: int, prefixes: Sequence[str]
) -> list[Finding]:
    """Everything wrong with one line's codes, in the order a cashier would fix them.

    Whole packages: exactly one code per package. Split: at least one code, and no more codes
    than packages the units could come from (they may straddle two opened packages: at most
    quantity / package size, rounded up, plus one; never more than one code per unit).
    """
    if not codes:
        return [Finding(Problem.NO_CODE, None, "the line carries no traceability code")]
    findings: list[Finding] = []
    seen: set[str] = set()
    for code in codes:
        if not is_well_formed(code):
            findings.append(Finding(Problem.MALFORMED_CODE, code, f"{code!r} is not a 20-digit traceability code"))
        elif prefixes and code[:PREFIX_LENGTH] not in prefixes:
            product = code[:PREFIX_LENGTH]
            findings.append(
                Finding(Problem.PRODUCT_MISMATCH, code, f"{code} identifies product {product}, not this drug")
            )
        if code in seen:
            findings.append(Finding(Problem.DUPLICATE_CODE, code, f"{code} is scanned twice on one line"))
        seen.add(code)
    if split:
        most = min(quantity, -(-quantity // package_units) + 1)
        if len(codes) > most:
            findings.append(
                Finding(
                    Problem.CODE_COUNT_MISMATCH,
                    None,
                    f"{len(codes)} codes for {quantity} split units of a {package_units}-unit package",
                )
            )
    elif len(codes) != quantity:
        findings.append(Finding(Problem.CODE_COUNT_MISMATCH, None, f"{len(codes)} codes for {quantity} whole packages"))
    return findings


def take_units(wanted: int, remaining: Sequence[int]) -> list[int] | None:
    """How many units to take from each package, in the order scanned, to dispense `wanted`;
    None when the packages hold fewer than that.
    """
    taken: list[int] = []
    for units in remaining:
        share = min(units, wanted - sum(taken))
        taken.append(max(0, share))
    return taken if sum(taken) == wanted else None


class AnomalyKind(StrEnum):
    """What a fund supervisor is shown, each with a fixed severity."""

    CODE_REUSED = "CODE_REUSED"
    UNITS_BEYOND_PACKAGE = "UNITS_BEYOND_PACKAGE"
    PRODUCT_MISMATCH = "PRODUCT_MISMATCH"
    MALFORMED_CODE = "MALFORMED_CODE"
    CODE_COUNT_MISMATCH = "CODE_COUNT_MISMATCH"
    REUSED_AFTER_REVERSAL = "REUSED_AFTER_REVERSAL"
    NO_PRESCRIPTION = "NO_PRESCRIPTION"
    SOLD_BEFORE_LISTING = "SOLD_BEFORE_LISTING"
    NO_CODE_STOCK = "NO_CODE_STOCK"
    AUDIT_FORGERY = "AUDIT_FORGERY"
    """Not a traceability finding: an audit entry the service did not write (raised by the sealer)."""

    @property
    def severity(self) -> str:
        return _SEVERITY[self]


_SEVERITY = {
    AnomalyKind.CODE_REUSED: "high",
    AnomalyKind.UNITS_BEYOND_PACKAGE: "high",
    AnomalyKind.PRODUCT_MISMATCH: "high",
    AnomalyKind.MALFORMED_CODE: "high",
    AnomalyKind.CODE_COUNT_MISMATCH: "medium",
    AnomalyKind.REUSED_AFTER_REVERSAL: "medium",
    AnomalyKind.NO_PRESCRIPTION: "medium",
    AnomalyKind.SOLD_BEFORE_LISTING: "medium",
    AnomalyKind.NO_CODE_STOCK: "low",
    AnomalyKind.AUDIT_FORGERY: "high",
}

FINDING_KIND = {
    Problem.MALFORMED_CODE: AnomalyKind.MALFORMED_CODE,
    Problem.PRODUCT_MISMATCH: AnomalyKind.PRODUCT_MISMATCH,
    Problem.CODE_COUNT_MISMATCH: AnomalyKind.CODE_COUNT_MISMATCH,
    Problem.DUPLICATE_CODE: AnomalyKind.CODE_REUSED,
    Problem.NO_CODE: AnomalyKind.NO_CODE_STOCK,
}


@dataclass(frozen=True, slots=True)
class DrugFacts:
    package_units: int
    prefixes: tuple[str, ...]
    listed_on: date | None


@dataclass(frozen=True, slots=True)
class CodeEvent:
    """One use of a code: `units` sold or returned at `at`, for a claim served on `service_date`."""

    id: str
    code: str
    drug: str
    kind: str  # "sold" or "returned"
    units: int
    at: datetime
    service_date: date
    institution: str


@dataclass(frozen=True, slots=True)
class Detection:
    kind: AnomalyKind
    event_id: str
    code: str
    message: str

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}:{self.event_id}"


def detect(events: Sequence[CodeEvent], drugs: Mapping[str, DrugFacts], reversal_window: timedelta) -> list[Detection]:
    """The anomalies a history of code events shows, replayed code by code in time order:
    a package sold again, split beyond its units, for another product, before the product was
    listed, or again soon after a reversal. Used by the writer (on a claim's new events, after
    the code's history) and by the scan (on everything), so both judge alike.
    """
    found: list[Detection] = []
    by_code: dict[str, list[CodeEvent]] = {}
    for event in events:
        by_code.setdefault(event.code, []).append(event)
    for code, history in by_code.items():
        sold = 0
        returned_at: datetime | None = None
        for event in sorted(history, key=lambda e: (e.at, e.id)):
            if event.kind == "returned":
                sold -= event.units
                returned_at = event.at
                continue
            facts = drugs.get(event.drug)
            if facts is not None and facts.prefixes and code[:PREFIX_LENGTH] not in facts.prefixes:
                found.append(
                    Detection(AnomalyKind.PRODUCT_MISMATCH, event.id, code, f"{code} is not a package of {event.drug}")
                )
            if facts is not None and facts.listed_on is not None and event.service_date < facts.listed_on:
                found.append(
                    Detection(
                        AnomalyKind.SOLD_BEFORE_LISTING,
                        event.id,
                        code,
                        f"sold on {event.service_date}, before {event.drug} was listed on {facts.listed_on}",
                    )
                )
            if returned_at is not None and event.at - returned_at <= reversal_window:
                found.append(
                    Detection(
                        AnomalyKind.REUSED_AFTER_REVERSAL,
                        event.id,
                        code,
                        f"sold again {event.at - returned_at} after a reversal freed it",
                    )
                )
            if facts is not None and sold + event.units > facts.package_units:
                whole = sold > 0 and (sold >= facts.package_units or event.units == facts.package_units)
                kind = AnomalyKind.CODE_REUSED if whole else AnomalyKind.UNITS_BEYOND_PACKAGE
                message = (
                    f"{code} was already sold ({sold} of {facts.package_units} units)"
                    if kind is AnomalyKind.CODE_REUSED
                    else f"{sold + event.units} units dispensed from a {facts.package_units}-unit package"
                )
                found.append(Detection(kind, event.id, code, message))
            sold += event.units
    return found
