"""Scalars: money is `Yuan`, a decimal string with two places ("1234.50"), integer fen inside."""

from __future__ import annotations

from typing import NewType

import strawberry

from adjudication.money import format_yuan, parse_yuan

Yuan = NewType("Yuan", int)

SCALARS = {
    Yuan: strawberry.scalar(
        name="Yuan",
        description='Money in yuan: a decimal string with two places ("1234.50"); exact, never a float.',
        serialize=format_yuan,
        parse_value=parse_yuan,
    )
}
