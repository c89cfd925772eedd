"""Money is integer fen; ratios integer millionths; one rounding rule; spreads add up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adjudication.money import RATIO_ONE, format_ratio, format_yuan, parse_ratio, parse_yuan, round_half_up, spread


@pytest.mark.parametrize(
    ("text", "fen"), [("0", 0), ("0.00", 0), ("1234.5", 123450), ("1234.50", 123450), ("98000.00", 9800000)]
)
def test_yuan_strings_parse_to_fen(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["-1.00", "1.001", "1e3", " 1.00", "01.00", "1,000.00", "", ".50", "NaN"])
def test_malformed_yuan_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_yuan(text)


@given(st.integers(min_value=0, max_value=10**15))
def test_fen_round_trip_through_yuan_strings(fen: int) -> None:
    assert parse_yuan(format_yuan(fen)) == fen


@pytest.mark.parametrize(("text", "ratio"), [("0", 0), ("1", RATIO_ONE), ("0.85", 850_000), ("0.333333", 333_333)])
def test_ratios_parse_to_millionths(text: str, ratio: int) -> None:
    assert parse_ratio(text) == ratio
    assert parse_ratio(format_ratio(ratio)) == ratio


@pytest.mark.parametrize("text", ["1.01", "2", "-0.5", "0.1234567", "85%"])
def test_ratios_outside_zero_to_one_or_too_fine_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ratio(text)


def test_halves_round_up() -> None:
    assert [round_half_up(n, 10) for n in (4, 5, 6, 15, 25)] == [0, 1, 1, 2, 3]
    assert round_half_up(-5, 10) == -1


def test_the_spread_gives_leftover_fen_to_the_largest_remainders_ties_to_the_lower_index() -> None:
    assert spread(167, [101, 101, 101]) == [56, 56, 55]
    assert spread(10, [1, 2]) == [3, 7]
    assert spread(0, [0, 0]) == [0, 0]


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=6), st.data())
def test_a_spread_adds_up_and_no_share_exceeds_its_weight(weights: list[int], data: st.DataObject) -> None:
    amount = data.draw(st.integers(0, sum(weights)))
    shares = spread(amount, weights)
    assert sum(shares) == amount
    assert all(0 <= share <= weight for share, weight in zip(shares, weights, strict=True))
