"""Money and ratios as integers.

Amounts are integer fen (1 yuan = 100 fen); ratios are integer millionths (`RATIO_ONE` is
1.000000). Products of the two are in micro-fen and come back to fen through `round_half_up`,
the one rounding rule of the engine. Conversion to and from the decimal strings of the scenario
format happens only here, at the edges.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Fen = int
"""An amount of money in fen. Never negative in the engine's inputs and outputs."""

Ratio = int
"""A ratio in millionths: 0 is 0 %, `RATIO_ONE` is 100 %."""

RATIO_ONE: Ratio = 1_000_000
RATIO_PLACES = 6

_YUAN = re.compile(r"(0|[1-9][0-9]{0,13})(?:\.([0-9]{1,2}))?")
_RATIO = re.compile(r"(0|1)(?:\.([0-9]{1,6}))?")


def parse_yuan(text: str) -> Fen:
    """Parse a decimal yuan string with at most two places ("1234.50") into fen.

    Raises ValueError for anything else: a sign, a third decimal, an exponent, spaces.
    """
    match = _YUAN.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an amount in yuan with at most two decimals, at least 0")
    whole, fraction = match.groups()
    return int(whole) * 100 + int((fraction or "").ljust(2, "0"))


def format_yuan(amount: Fen) -> str:
    """Render fen as a yuan string with exactly two places."""
    sign = "-" if amount < 0 else ""
    whole, fen = divmod(abs(amount), 100)
    return f"{sign}{whole}.{fen:02d}"


def parse_ratio(text: str) -> Ratio:
    """Parse a decimal ratio between 0 and 1 with at most six places ("0.85") into millionths."""
    match = _RATIO.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a ratio between 0 and 1 with at most six decimals")
    whole, fraction = match.groups()
    value = int(whole) * RATIO_ONE + int((fraction or "").ljust(RATIO_PLACES, "0"))
    if value > RATIO_ONE:
        raise ValueError(f"{text!r} is above 1")
    return value


def format_ratio(ratio: Ratio) -> str:
    """Render millionths as the shortest decimal string with at least two places ("0.85")."""
    whole, fraction = divmod(ratio, RATIO_ONE)
    digits = f"{fraction:06d}".rstrip("0").ljust(2, "0")
    return f"{whole}.{digits}"


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves away from zero.

    The engine only divides non-negative quantities; the rule is stated for both signs anyway.
    """
    if numerator < 0:
        return -((-numerator * 2 + denominator) // (2 * denominator))
    return (numerator * 2 + denominator) // (2 * denominator)


def apply_ratio(amount: Fen, ratio: Ratio) -> Fen:
    """amount × ratio, rounded half up to the fen."""
    return (amount * ratio * 2 + RATIO_ONE) // (2 * RATIO_ONE)


def spread(amount: Fen, weights: Sequence[int]) -> list[Fen]:
    """Split `amount` over `weights` in proportion, by largest remainder.

    Each share is first floor(amount × weight / total); the fen left over go one each to the
    largest remainders, ties to the lower index. The shares always sum to `amount`, and a share
    never exceeds its weight when `amount` does not exceed the total weight.
    """
    total = sum(weights)
    if total == 0:
        if amount:
            raise ValueError("cannot spread a non-zero amount over zero weights")
        return [0] * len(weights)
    shares: list[Fen] = []
    remainders: list[tuple[int, int]] = []
    for index, weight in enumerate(weights):
        share, remainder = divmod(amount * weight, total)
        shares.append(share)
        remainders.append((-remainder, index))
    left = amount - sum(shares)
    if left:
        for _, index in sorted(remainders)[:left]:
            shares[index] += 1
    return shares
