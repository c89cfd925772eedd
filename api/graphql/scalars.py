"""Scalars: money is `Yuan`, a decimal string with two places ("1234.50"), integer fen inside."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from adjudication.money import format_yuan, parse_yuan

Yuan = NewType("Yuan", int)

SCALARS: Mapping[object, ScalarDefinition] = {
    Yuan: strawberry.scalar(
        name="Yuan",
        description='Money in yuan: a decimal string with two places ("1234.50"); exact, never a float.',
        serialize=format_yuan,
        parse_value=parse_yuan,
    )
}
