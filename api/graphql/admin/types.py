from __future__ import annotations

import strawberry


@strawberry.type(description="What a loaded document changed.")
class LoadSummary:
    payers: int
    institutions: int
    drugs: int
    people: int
    formulary_versions: int
    plan_versions: int
    grants: int
    unchanged_versions: int = strawberry.field(description="Versions already loaded identically (a no-op).")
    trace_policies: int
