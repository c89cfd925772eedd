"""The schema composes the areas; nothing else lives here."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.graphql.admin.mutations import AdminMutations
from api.graphql.admin.queries import CatalogueQueries
from api.graphql.people.queries import PeopleQueries
from api.graphql.scalars import SCALARS
from api.graphql.settlements.mutations import SettlementMutations
from api.graphql.settlements.queries import SettlementQueries

Query = merge_types("Query", (SettlementQueries, PeopleQueries, CatalogueQueries))
Mutation = merge_types("Mutation", (SettlementMutations, AdminMutations))

CACHE_SIZE = 256
"""Distinct query texts whose parse and validation are kept (bounded: clients are many, queries few)."""


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALARS),
        # factories: strawberry builds the extensions per request; the two caches are module-level
        # LRUs keyed by their size, so they are shared across requests
        extensions=[
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
            lambda: QueryDepthLimiter(max_depth=12),
            lambda: MaxAliasesLimiter(max_alias_count=30),
            lambda: MaxTokensLimiter(max_token_count=5_000),
        ],
    )
