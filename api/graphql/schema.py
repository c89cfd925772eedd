"""The schema composes the areas; nothing else lives here."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from api.graphql.admin.mutations import AdminMutations
from api.graphql.admin.queries import CatalogueQueries
from api.graphql.outcomes import OperationNoted, outcome_code, unexpected
from api.graphql.people.queries import PeopleQueries
from api.graphql.scalars import SCALARS
from api.graphql.settlements.mutations import SettlementMutations
from api.graphql.settlements.queries import SettlementQueries
from api.graphql.supervision.mutations import SupervisionMutations
from api.graphql.supervision.queries import SupervisionQueries
from api.http.observability import note
from api.logs import describe, get_logger

Query = merge_types("Query", (SettlementQueries, PeopleQueries, CatalogueQueries, SupervisionQueries))
Mutation = merge_types("Mutation", (SettlementMutations, AdminMutations, SupervisionMutations))

log = get_logger("settle.graphql")

CACHE_SIZE = 256
"""Distinct query texts whose parse and validation are kept (bounded: clients are many, queries few)."""


class Schema(strawberry.Schema):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.root_fields = {
            kind: frozenset(root.fields) if root is not None else frozenset()
            for kind, root in (("query", self._schema.query_type), ("mutation", self._schema.mutation_type))
        }

    def get_extensions(self, sync: bool = False) -> list[SchemaExtension]:
        """The extensions of `build_schema`, and the one naming the operation for the request line."""
        return [*super().get_extensions(sync), OperationNoted(self.root_fields)]

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """The first error's code goes on the request line. Nothing else of an expected refusal is
        logged (a malformed request, a coercion error, FORBIDDEN): its message can quote the
        caller's input (an ID number written as a literal) and its path the caller's aliases.
        An unexpected error is logged once, as its classes and frames, without its message.
        """
        for error in errors:
            code = outcome_code(error)
            note(outcome=code)
            if code == "INTERNAL_ERROR" and error.original_error is not None:
                log.error("unexpected error", **describe(error.original_error))


def build_schema() -> strawberry.Schema:
    # The limits' validation rules are made once: strawberry's limiters define a new rule class
    # per instance, which would change the validation cache's key on every request and miss it.
    limits = [
        *QueryDepthLimiter(max_depth=12).validation_rules,
        *MaxAliasesLimiter(max_alias_count=30).validation_rules,
    ]
    return Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALARS),
        # factories: strawberry builds the extensions per request; the two caches are module-level
        # LRUs keyed by their size, so they are shared across requests
        extensions=[
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
            lambda: AddValidationRules(limits),
            lambda: MaxTokensLimiter(max_token_count=5_000),
            lambda: MaskErrors(should_mask_error=unexpected, error_message="internal error: the event is logged"),
        ],
    )
