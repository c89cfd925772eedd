"""Plans and the commercial catalogue, as each caller may see them."""

from __future__ import annotations

from datetime import date
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Info
from api.graphql.permissions import CatalogueReaders, MayReadPrice, PlanReaders
from api.graphql.scalars import Yuan
from api.services import queries


@strawberry.type(description="One version of a payer's plan; `definition` is the plan object of SCENARIO.md.")
class PlanVersion:
    plan: str
    payer: str
    kind: str
    region: str
    priority: int
    effective_from: date
    definition: JSON


@strawberry.type(description="A drug of the commercial innovative-drug catalogue under one insurer.")
class CatalogueEntry:
    drug: str
    insurer: str
    _price_fen: strawberry.Private[int]

    @strawberry.field(
        description="The negotiated settlement price per unit: confidential, for its insurer and price auditors.",
        permission_classes=[MayReadPrice],
    )
    def settlement_price(self) -> Yuan | None:
        return Yuan(self._price_fen)


def _plan(row: dict[str, Any]) -> PlanVersion:
    return PlanVersion(
        plan=row["plan_code"],
        payer=row["payer_code"],
        kind=row["kind"],
        region=row["region"],
        priority=row["priority"],
        effective_from=row["effective_from"],
        definition=row["definition"],
    )


@strawberry.type
class CatalogueQueries:
    @strawberry.field(
        description="Plan versions you may see; with onDate, the version of each plan in force that day.",
        permission_classes=[PlanReaders],
    )
    async def plans(
        self, info: Info, region: str | None = None, on_date: date | None = None
    ) -> list[PlanVersion] | None:
        rows = await queries.plans(info.context.sessions, info.context.principal, region, on_date)
        return [_plan(row) for row in rows]

    @strawberry.field(
        description="The commercial catalogue in force in a region on a day, as you may see it.",
        permission_classes=[CatalogueReaders],
    )
    async def commercial_catalogue(self, info: Info, region: str, on_date: date) -> list[CatalogueEntry] | None:
        rows = await queries.catalogue(info.context.sessions, info.context.principal, region, on_date)
        return [
            CatalogueEntry(drug=row["drug_code"], insurer=row["insurer_code"], _price_fen=row["settlement_price_fen"])
            for row in rows
        ]
