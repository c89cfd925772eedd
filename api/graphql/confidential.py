"""Confidential figures: shown in clear to those who may read them, otherwise null with a MASKED
marker (never an error that would break the rest of the caller's query).
"""

from __future__ import annotations

from enum import StrEnum

import strawberry

from api.graphql.scalars import Yuan


@strawberry.enum(description="Whether a confidential figure is shown to you.")
class Disclosure(StrEnum):
    CLEAR = "clear"
    MASKED = "masked"


@strawberry.type(description="A confidential amount: `value` is null and `disclosure` MASKED unless you may read it.")
class ConfidentialAmount:
    value: Yuan | None
    disclosure: Disclosure

    @classmethod
    def of(cls, amount_fen: int | None) -> ConfidentialAmount:
        if amount_fen is None:
            return cls(value=None, disclosure=Disclosure.MASKED)
        return cls(value=Yuan(amount_fen), disclosure=Disclosure.CLEAR)
