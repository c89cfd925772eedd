"""A query's cost, depth, aliases and page sizes are measured once on the parsed document, in time
linear in the document, and a query beyond a limit is refused with a stable code before
validation and before any resolver runs.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import httpx
import pytest
from graphql import GraphQLSchema, get_introspection_query, parse
from sqlalchemy import func, select

from api.app import create_app
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.graphql.cost import DEFAULT_LIST_SIZE, PAGE_ITEM_COST, QueryCost, measure, refusal
from api.graphql.schema import build_schema
from api.settings import PROJECT_ROOT, Settings
from tests.api.conftest import Service, running, settings_for

LIMITS = Settings().limits.query
LEAF = "settlements(first: 1) { edges { cursor } }"


def doubling_fragments(levels: int, leaf: str = LEAF) -> str:
    """`F0` spreads `F1` twice, `F1` spreads `F2` twice ... `F{levels}` selects `leaf`: a few bytes
    per level, 2^levels copies of `leaf` once expanded."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    return "\n".join(["query Bomb { ...F0 }", *fragments, f"fragment F{levels} on Query {{ {leaf} }}"])


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema()._schema


def measured(schema: GraphQLSchema, query: str, variables: dict[str, Any] | None = None) -> QueryCost:
    return measure(parse(query), schema, variables)


def refusal_code(schema: GraphQLSchema, query: str, variables: dict[str, Any] | None = None) -> str | None:
    error = refusal(measured(schema, query, variables), LIMITS)
    return None if error is None else str((error.extensions or {})["code"])


# --- the analysis itself ----------------------------------------------------------------------


def test_each_fragment_of_a_doubling_bomb_is_analysed_once_and_its_cost_is_what_it_expands_to(
    schema: GraphQLSchema,
) -> None:
    bomb = measured(schema, doubling_fragments(40))

    assert dict(bomb.fragment_visits) == {f"F{i}": 1 for i in range(41)}
    # the leaf: settlements 1 + edges 1 + one item (its row, PAGE_ITEM_COST, and its cursor 1)
    assert bomb.cost == 2**40 * (1 + 1 + PAGE_ITEM_COST + 1)
    assert (bomb.depth, bomb.aliases) == (3, 0)
    assert refusal_code(schema, doubling_fragments(40)) == "QUERY_TOO_COMPLEX"


def test_a_bomb_ending_in_typename_costs_what_it_expands_to(schema: GraphQLSchema) -> None:
    assert measured(schema, doubling_fragments(40, "__typename")).cost == 2**40


def test_aliases_in_a_fragment_count_at_every_spread(schema: GraphQLSchema) -> None:
    bomb = measured(schema, doubling_fragments(40, "a: __typename"))

    assert bomb.aliases == 2**40
    assert refusal_code(schema, doubling_fragments(40, "a: __typename")) == "TOO_MANY_ALIASES"


def test_cycles_and_unknown_fragments_fields_and_types_are_measured_without_crashing(schema: GraphQLSchema) -> None:
    query = """query { ...A nope { deeper } ...Missing }
      fragment A on Query { ...B settlements(first: 2) { edges { cursor } } }
      fragment B on Query { ...A ... on Nowhere { what } }
      fragment C on NoSuchType { ...C }"""

    result = measured(schema, query)

    assert dict(result.fragment_visits) == {"A": 1, "B": 1}  # C is not reached
    # nope 1 + deeper 1; what 1; settlements 1 + edges 1 + 2 × (row + cursor)
    assert result.cost == 2 + 1 + 2 + 2 * (PAGE_ITEM_COST + 1)


def test_a_chain_of_fragments_longer_than_the_interpreters_recursion_limit_is_measured(
    schema: GraphQLSchema,
) -> None:
    links = 3_000
    chain = [f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(links)]
    query = "\n".join(["{ ...F0 }", *chain, f"fragment F{links} on Query {{ __typename }}"])

    result = measured(schema, query)

    assert (result.cost, result.depth, len(result.fragment_visits)) == (1, 1, links + 1)


def test_a_connection_costs_its_page_of_rows_and_what_is_selected_of_each(schema: GraphQLSchema) -> None:
    query = """query($n: Int!) { settlements(first: $n) { edges { node { id } } pageInfo { hasNextPage } } }"""

    result = measured(schema, query, {"n": 7})

    # settlements 1, edges 1, pageInfo 1 + hasNextPage 1, then 7 × (row + node 1 + id 1)
    assert result.cost == 4 + 7 * (PAGE_ITEM_COST + 2)
    assert result.depth == 4


def test_an_unpaginated_list_counts_the_default_number_of_items_and_a_list_of_scalars_one_value(
    schema: GraphQLSchema,
) -> None:
    query = """{ settlement(id: "x") { diagnoses explanation { lines { drug payments { plan } } } } }"""

    result = measured(schema, query)

    # settlement 1, diagnoses 1, explanation 1, lines 1 + L × (drug 1 + payments 1 + L × plan 1)
    assert result.cost == 4 + DEFAULT_LIST_SIZE * (2 + DEFAULT_LIST_SIZE)


def test_the_standard_introspection_query_is_within_every_default_limit(schema: GraphQLSchema) -> None:
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )

    result = measured(schema, query)

    assert result.depth == 15  # __schema types fields args type, ofType nine times, name
    assert refusal(result, LIMITS) is None


def test_the_graphql_of_the_readme_is_within_every_default_limit(schema: GraphQLSchema) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```graphql\n(.*?)```", readme, flags=re.DOTALL)

    assert blocks
    for block in blocks:
        assert refusal(measured(schema, block), LIMITS) is None, block


def test_a_page_size_is_read_from_the_operations_variables_or_their_defaults(schema: GraphQLSchema) -> None:
    query = "query($n: Int = 300) { settlements(first: $n) { edges { cursor } } }"

    assert refusal_code(schema, query, {"n": 100}) is None
    assert refusal_code(schema, query) == "PAGE_SIZE_INVALID"
    assert refusal_code(schema, query, {"n": None}) == "PAGE_SIZE_INVALID"
    assert refusal_code(schema, query, {"n": True}) == "PAGE_SIZE_INVALID"
    assert refusal_code(schema, "query($n: Int) { settlements(first: $n) { edges { cursor } } }") == (
        "PAGE_SIZE_INVALID"
    )


# --- through the service --------------------------------------------------------------------


async def refused(response: httpx.Response) -> tuple[str, str]:
    """The one error of a query refused before it ran: its code and message."""
    body = response.json()
    assert body.get("data") is None, body
    [error] = body["errors"]
    return error["extensions"]["code"], error["message"]


async def audit_count(service: Service) -> int:
    engine = create_engine(service.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return (await session.execute(select(func.count()).select_from(models.AuditEntry))).scalar_one()
    finally:
        await engine.dispose()


async def test_a_fragment_bomb_is_refused_as_too_complex_before_any_resolver_runs(service: Service) -> None:
    # an administrator may not read settlements: the resolver's permission check, had it run,
    # would have written a denied attempt into the audit log
    admin = service.as_(service.tokens.admin)
    before = await audit_count(service)

    code, message = await refused(await admin.post(doubling_fragments(40)))

    assert code == "QUERY_TOO_COMPLEX"
    assert str(LIMITS.max_cost) in message
    assert await audit_count(service) == before
    direct = await admin.post(f"{{ {LEAF} }}")
    assert direct.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await audit_count(service) == before + 1


async def test_a_bomb_with_an_invalid_field_is_refused_by_its_cost_not_by_validation(service: Service) -> None:
    bomb = doubling_fragments(40, "settlements(first: 1) { edges { noSuchField } }")

    for _ in range(2):  # the second time too: a refused document is never cached as validated
        code, _message = await refused(await service.post(bomb))
        assert code == "QUERY_TOO_COMPLEX"


async def test_aliases_of_a_large_page_are_refused(service: Service) -> None:
    over_cap = " ".join(f"a{i}: settlements(first: 200) {{ edges {{ node {{ id }} }} }}" for i in range(29))
    at_cap = " ".join(f"a{i}: settlements(first: 100) {{ edges {{ cursor }} }}" for i in range(29))

    assert (await refused(await service.post(f"{{ {over_cap} }}")))[0] == "PAGE_SIZE_INVALID"
    assert (await refused(await service.post(f"{{ {at_cap} }}")))[0] == "QUERY_TOO_COMPLEX"


async def test_nested_introspection_beyond_the_depth_limit_is_refused(service: Service) -> None:
    of_types = "ofType { " * 12 + "name" + " }" * 12
    query = f"{{ __schema {{ types {{ fields {{ type {{ {of_types} }} }} }} }} }}"

    code, message = await refused(await service.post(query))

    assert code == "QUERY_TOO_DEEP"
    assert "17" in message and str(LIMITS.max_depth) in message


async def test_too_many_aliases_are_refused(service: Service) -> None:
    aliases = " ".join(f"a{i}: __typename" for i in range(LIMITS.max_aliases + 1))

    code, message = await refused(await service.post(f"{{ {aliases} }}"))

    assert code == "TOO_MANY_ALIASES"
    assert str(LIMITS.max_aliases + 1) in message


@pytest.mark.parametrize("first", [0, -1, 101])
@pytest.mark.parametrize("collection", ["settlements", "anomalies"])
async def test_a_page_size_outside_1_to_the_cap_is_refused_before_any_sql(
    service: Service, collection: str, first: int
) -> None:
    supervisor = service.as_(service.tokens.supervisor())
    literal = f"{{ {collection}(first: {first}) {{ edges {{ cursor }} }} }}"
    variable = f"query($n: Int!) {{ {collection}(first: $n) {{ edges {{ cursor }} }} }}"

    for response in (await supervisor.post(literal), await supervisor.post(variable, {"n": first})):
        code, message = await refused(response)
        assert code == "PAGE_SIZE_INVALID"
        assert f"from 1 to {LIMITS.max_page_size}" in message


async def test_a_paginated_collection_without_a_page_size_is_refused(service: Service) -> None:
    code, message = await refused(await service.post("{ settlements { edges { cursor } } }"))

    assert code == "PAGE_SIZE_REQUIRED"
    assert "Query.settlements is paginated: give first" in message


async def test_the_introspection_query_of_graphiql_and_code_generators_is_answered(service: Service) -> None:
    data = await service.graphql(get_introspection_query(descriptions=True))

    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_the_limits_are_settings(database_url: str, tokens: Any) -> None:
    settings = settings_for(database_url, tokens).replace(query_max_cost=50, query_max_page_size=10)
    async with running(create_app(settings)) as client:
        tight = Service(client, database_url, tokens, tokens.hospital)

        cheap = await tight.post("{ settlements(first: 2) { edges { cursor } } }")
        costly = await tight.post("{ settlements(first: 3) { edges { cursor } } }")
        large = await tight.post("{ settlements(first: 11) { edges { cursor } } }")

    assert cheap.json() == {"data": {"settlements": {"edges": []}}}
    assert (await refused(costly))[0] == "QUERY_TOO_COMPLEX"  # 2 + 3 × 21 = 65 > 50
    assert (await refused(large))[0] == "PAGE_SIZE_INVALID"


def test_the_limits_are_read_from_the_environment() -> None:
    settings = Settings.from_environment(
        {
            "SETTLE_QUERY_MAX_COST": "500",
            "SETTLE_QUERY_MAX_DEPTH": "9",
            "SETTLE_QUERY_MAX_ALIASES": "3",
            "SETTLE_QUERY_MAX_PAGE_SIZE": "25",
        }
    )

    assert settings.limits.query == replace(LIMITS, max_cost=500, max_depth=9, max_aliases=3, max_page_size=25)
