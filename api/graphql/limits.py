"""The schema extension that refuses a query too costly, too deep or too wide before it runs."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from api.graphql.cost import QueryLimits, measure, refusal


class QueryCostLimiter(SchemaExtension):
    """Measures each parsed document once (api/graphql/cost.py) and refuses it with a coded
    GraphQL error before graphql-core validates it and before any resolver runs.

    It acts as parsing ends, and raises rather than only setting `pre_execution_errors`:
    strawberry's ValidationCache validates (and caches) a document whatever `pre_execution_errors`
    already hold, so only an exception keeps a refused document out of validation and its cache.
    strawberry answers the exception as a pre-execution error, `data` null.
    """

    def __init__(self, limits: QueryLimits) -> None:
        self.limits = limits

    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        if context.graphql_document is None:  # a syntax error: strawberry reports it
            return
        measured = measure(context.graphql_document, context.schema._schema, context.variables, context.operation_name)
        error = refusal(measured, self.limits)
        if error is not None:
            context.pre_execution_errors = [error]
            raise error
