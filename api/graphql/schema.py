"""The schema composes the areas; nothing else lives here."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.graphql.admin.mutations import AdminMutations
from api.graphql.admin.queries import CatalogueQueries
from api.graphql.errors import ServiceErrors
from api.graphql.people.queries import PeopleQueries
from api.graphql.scalars import SCALARS
from api.graphql.settlements.mutations import SettlementMutations
from api.graphql.settlements.queries import SettlementQueries
from api.graphql.supervision.mutations import SupervisionMutations
from api.graphql.supervision.queries import SupervisionQueries

Query = merge_types("Query", (SettlementQueries, PeopleQueries, CatalogueQueries, SupervisionQueries))
Mutation = merge_types("Mutation", (SettlementMutations, AdminMutations, SupervisionMutations))


def build_schema() -> strawberry.Schema:
    """The schema's types and resolvers. How a request is parsed, limited, validated, executed and
    its errors coded is `api/graphql/execution.py`'s business, not strawberry's extensions'.
    """
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALARS),
        exception_handlers=[ServiceErrors()],
    )
