"""The schema composes the areas; nothing else lives here."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from api.crypto.envelope import DecryptionError
from api.graphql.admin.mutations import AdminMutations
from api.graphql.admin.queries import CatalogueQueries
from api.graphql.cost import QueryLimits
from api.graphql.limits import QueryCostLimiter
from api.graphql.people.queries import PeopleQueries
from api.graphql.scalars import SCALARS
from api.graphql.settlements.mutations import SettlementMutations
from api.graphql.settlements.queries import SettlementQueries
from api.graphql.supervision.mutations import SupervisionMutations
from api.graphql.supervision.queries import SupervisionQueries
from api.settings import Settings

Query = merge_types("Query", (SettlementQueries, PeopleQueries, CatalogueQueries, SupervisionQueries))
Mutation = merge_types("Mutation", (SettlementMutations, AdminMutations, SupervisionMutations))

log = logging.getLogger("settle.graphql")

CACHE_SIZE = 256
"""Distinct query texts whose parse and validation are kept (bounded: clients are many, queries few)."""


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log each error's message, code and path, never the query text: a caller may have
        written personal data (an ID number) into it as a literal.
        """
        for error in errors:
            code = (error.extensions or {}).get("code")
            log.warning("graphql error %s at %s: %s", code, error.path, error.message, exc_info=error.original_error)


def unexpected(error: GraphQLError) -> bool:
    """An error that is not a GraphQL error of ours (a bug, a database failure): its message may
    carry SQL and parameters, so the caller sees only that it happened. A value that cannot be
    decrypted (its key destroyed, its ciphertext moved) is said as such: that is the explicit
    answer crypto-shredding owes.
    """
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | DecryptionError)


def query_limits(settings: Settings) -> QueryLimits:
    return QueryLimits(
        max_cost=settings.query_max_cost,
        max_depth=settings.query_max_depth,
        max_aliases=settings.query_max_aliases,
        max_page_size=settings.query_max_page_size,
    )


def build_schema(limits: QueryLimits) -> strawberry.Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALARS),
        # factories: strawberry builds the extensions per request; the two caches are module-level
        # LRUs keyed by their size, so they are shared across requests. The limiter measures the
        # parsed document and refuses it before validation (and its cache) sees it.
        extensions=[
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: QueryCostLimiter(limits),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
            lambda: MaxTokensLimiter(max_token_count=5_000),
            lambda: MaskErrors(should_mask_error=unexpected, error_message="internal error: the event is logged"),
        ],
    )
