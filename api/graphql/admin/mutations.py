from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from api.graphql.admin.types import LoadSummary
from api.graphql.context import Info
from api.graphql.errors import Forbidden, InvalidInput, NotFound, VersionConflict
from api.graphql.people.types import PrepaymentPool, pool_type
from api.services import loading, queries

LoadRefusal = InvalidInput | NotFound | VersionConflict | Forbidden
LoadResult = Annotated[LoadSummary | LoadRefusal, strawberry.union("LoadResult")]
GrantRefusal = InvalidInput | NotFound | Forbidden
GrantResult = Annotated[PrepaymentPool | GrantRefusal, strawberry.union("GrantResult")]


@strawberry.type
class AdminMutations:
    @strawberry.mutation(
        description="Load reference data (the document of `settle load`): payers, institutions, drugs, people, "
        "a formulary and plans with their effective date, prepayment grants. Administrators only."
    )
    async def load_document(self, info: Info, document: JSON) -> LoadResult:
        context = info.context
        summary = await loading.load_document(context.runtime, context.principal, document)
        return LoadSummary(**{name: getattr(summary, name) for name in LoadSummary.__annotations__})

    @strawberry.mutation(description="Advance money into a payer's prepayment pool at an institution (预付金).")
    async def grant_prepayment(
        self, info: Info, reference: str, payer: str, institution: str, amount: str, note: str = ""
    ) -> GrantResult:
        context = info.context
        grant = {"reference": reference, "payer": payer, "institution": institution, "amount": amount}
        document = {"grants": [grant | ({"note": note} if note else {})]}
        await loading.load_document(context.runtime, context.principal, document)
        pools = await queries.pools(context.runtime.sessions, context.principal, institution)
        return next(pool_type(pool) for pool in pools if pool.payer == payer)
