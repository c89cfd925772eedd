"""Traceability-code rules and the anomaly detector, on plain values."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from adjudication.tracecodes import AnomalyKind, CodeEvent, DrugFacts, Problem, check_line, detect, take_units

VIAL = DrugFacts(package_units=1, prefixes=("8301234",), listed_on=date(2026, 1, 1))
BOX = DrugFacts(package_units=60, prefixes=("8305678",), listed_on=None)
DRUGS = {"VIAL": VIAL, "BOX": BOX}
T0 = datetime(2026, 3, 1, 9, 0)


def event(n: int, code: str, kind: str = "sold", units: int = 1, drug: str = "VIAL", hours: int = 0) -> CodeEvent:
    return CodeEvent(f"e{n}", code, drug, kind, units, T0 + timedelta(hours=hours), date(2026, 3, 1), "H1")


def problems(codes: list[str], quantity: int, split: bool = False, facts: DrugFacts = VIAL) -> list[Problem]:
    return [
        f.problem
        for f in check_line(codes, quantity, split=split, package_units=facts.package_units, prefixes=facts.prefixes)
    ]


def test_a_line_carries_one_well_formed_code_of_its_product_per_package() -> None:
    good = ["83012340000000000001", "83012340000000000002"]
    assert problems(good, 2) == []
    assert problems(good[:1], 2) == [Problem.CODE_COUNT_MISMATCH]
    assert problems(["8301234000000000000X", good[1]], 2) == [Problem.MALFORMED_CODE]
    assert problems(["99999990000000000001", good[1]], 2) == [Problem.PRODUCT_MISMATCH]
    assert problems([good[0], good[0]], 2) == [Problem.DUPLICATE_CODE]
    assert problems([], 1) == [Problem.NO_CODE]


def test_a_split_line_names_the_packages_its_units_come_from() -> None:
    box = "83056780000000000001"
    assert problems([box], 25, split=True, facts=BOX) == []
    assert problems([box, "83056780000000000002"], 25, split=True, facts=BOX) == []  # straddling two boxes
    three = [box, "83056780000000000002", "83056780000000000003"]
    assert problems(three, 25, split=True, facts=BOX) == [Problem.CODE_COUNT_MISMATCH]


def test_units_are_taken_from_packages_in_the_order_scanned() -> None:
    assert take_units(25, [10, 60]) == [10, 15]
    assert take_units(25, [10, 10]) is None
    assert take_units(0, [5]) == [0]


def test_the_detector_flags_reuse_excess_mismatch_early_sale_and_quick_resale() -> None:
    history = [
        event(1, "83012340000000000001"),
        event(2, "83012340000000000001", hours=1),  # a vial sold twice
        event(3, "83056780000000000001", units=50, drug="BOX"),
        event(4, "83056780000000000001", units=20, drug="BOX", hours=1),  # 70 of 60 tablets
        event(5, "99999990000000000001"),  # not a package of VIAL
        event(6, "83012340000000000009", kind="sold"),
        event(7, "83012340000000000009", kind="returned", hours=1),
        event(8, "83012340000000000009", hours=2),  # sold again an hour after its reversal
        CodeEvent("e9", "83012340000000000005", "VIAL", "sold", 1, T0, date(2025, 12, 31), "H1"),  # before listing
    ]
    found = {(d.kind, d.event_id) for d in detect(history, DRUGS, timedelta(days=7))}
    assert found == {
        (AnomalyKind.CODE_REUSED, "e2"),
        (AnomalyKind.UNITS_BEYOND_PACKAGE, "e4"),
        (AnomalyKind.PRODUCT_MISMATCH, "e5"),
        (AnomalyKind.REUSED_AFTER_REVERSAL, "e8"),
        (AnomalyKind.SOLD_BEFORE_LISTING, "e9"),
    }
    assert detect(history[5:8], DRUGS, timedelta(minutes=30)) == []  # outside a shorter window


@given(st.lists(st.integers(1, 60), min_size=1, max_size=8))
def test_a_package_dispensed_within_its_units_is_never_flagged(parts: list[int]) -> None:
    kept, total = [], 0
    for units in parts:
        if total + units <= 60:
            kept.append(units)
            total += units
    history = [event(n, "83056780000000000001", units=u, drug="BOX", hours=n) for n, u in enumerate(kept)]
    assert detect(history, DRUGS, timedelta(days=7)) == []
