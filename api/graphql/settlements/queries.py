"""Settlements as their readers ask for them: one, by serial, or a page."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.graphql import typed
from api.graphql.context import Info
from api.graphql.cost import PAGE_SIZE_DESCRIPTION
from api.graphql.errors import parse_id
from api.graphql.permissions import ClaimReaders
from api.graphql.settlements.types import (
    PageInfo,
    Settlement,
    SettlementConnection,
    SettlementEdge,
    SettlementFilter,
    settlement_type,
)
from api.services import queries


@strawberry.type
class SettlementQueries:
    @typed.field(
        description="A settlement (a settled claim) with its lines, split and explanation of benefits.",
        permission_classes=[ClaimReaders],
    )
    async def settlement(self, info: Info, id: strawberry.ID) -> Settlement | None:
        settlement_id = parse_id(id)
        if settlement_id is None:
            return None
        found = await queries.settlement(info.context.runtime, info.context.principal, settlement_id)
        return None if found is None else settlement_type(found)

    @typed.field(
        description="Did this serial settle? For a cashier whose call timed out.", permission_classes=[ClaimReaders]
    )
    async def settlement_by_serial(self, info: Info, institution: str, serial: str) -> Settlement | None:
        context = info.context
        found = await queries.settlement_by_serial(context.runtime, context.principal, institution, serial)
        return None if found is None else settlement_type(found)

    @typed.field(
        description="Settlements, newest first, with Relay-style cursor pagination.", permission_classes=[ClaimReaders]
    )
    async def settlements(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description=PAGE_SIZE_DESCRIPTION)],
        after: str | None = None,
        filter: SettlementFilter | None = None,
    ) -> SettlementConnection | None:
        where = filter or SettlementFilter()
        page = await queries.settlements(  # a refused argument (a bad cursor) leaves as a coded field error
            info.context.runtime,
            info.context.principal,
            queries.SettlementFilter(
                institution=where.institution,
                payer=where.payer,
                service_from=where.service_from,
                service_to=where.service_to,
                drug=where.drug,
                status=None if where.status is None else where.status.value,
                region=where.region,
                insured_region=where.insured_region,
                cross_region=where.cross_region,
            ),
            first,
            after,
        )
        edges = [
            SettlementEdge(cursor=cursor, node=settlement_type(item))
            for item, cursor in zip(page.items, page.cursors, strict=True)
        ]
        return SettlementConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.cursors[-1] if page.cursors else None),
        )
