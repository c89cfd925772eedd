"""What a query asks of the service, measured once on the parsed document: before graphql-core's
validation (which walks every fragment again) and before any resolver or SQL runs.

A few hundred bytes of fragments that spread each other twice expand to 2^40 fields. So every
fragment is measured once, in dependency order, and its measure reused at every spread: the
analysis is linear in the document, whatever it expands to, and terminates on cycles and on
unknown fragments, fields and types (validation reports those afterwards, if the query gets there).

The cost estimates the work a query asks for, in fields resolved:

- every selected field costs 1: an object, a scalar (a resolver call too; and counted, a bomb
  ending in `__typename` costs what it expands to), an introspection field alike;
- a paginated collection (a field taking `first`/`last`) holds `first` (or `last`) items, each
  costing PAGE_ITEM_COST (its row) plus what is selected of it in the connection's lists (its
  `edges`); its other fields (`pageInfo`) count once;
- any other list of objects counts its items DEFAULT_LIST_SIZE times; a list of scalars is one value;
- `@skip`/`@include` are ignored: a skipped field costs as if it ran.

Depth is the number of fields on the longest path, leaf and introspection fields included:
`{ a }` is 1 deep. Aliases are counted in the expanded document: a fragment spread twice counts
its aliases twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NamedTypeNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    Undefined,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_list_type,
)

DEFAULT_LIST_SIZE = 4
"""Items assumed in a list that takes no page size: a claim's lines, a line's payers, a payer's
reasons hold a few each. With 4, graphql-core's introspection query (every option) is estimated
at 4,981 fields; run on this schema it resolves 5,394."""

PAGE_ITEM_COST = 20
"""What each item of a paginated collection adds to the fields selected of it: the row the service
reads (a settlement with its lines and payers), which costs the same whatever is selected. Without
it, 29 aliases of `settlements(first: 100) { edges { cursor } }` would look cheap."""

PAGE_ARGUMENTS = ("first", "last")
"""A field taking either argument is a paginated collection: it must be given one, within the cap."""

PAGE_SIZE_DESCRIPTION = (
    "How many items to return: required, from 1 to the service's page-size cap (100 unless configured "
    "otherwise); outside that range the query is refused with PAGE_SIZE_INVALID before it runs."
)
"""Said of `first` wherever a collection is paginated, so that the rule is in the schema a client reads."""

MEASURE_CEILING = 10**15
"""Costs and alias counts stop growing here: beyond any budget, and a bomb's figure stays short."""


class Refusal(StrEnum):
    """The `extensions.code` of a query refused before it runs."""

    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
    TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
    PAGE_SIZE_REQUIRED = "PAGE_SIZE_REQUIRED"
    PAGE_SIZE_INVALID = "PAGE_SIZE_INVALID"


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """What one query may ask (settings SETTLE_QUERY_MAX_*)."""

    max_cost: int = 10_000
    max_depth: int = 15
    max_aliases: int = 30
    max_page_size: int = 100


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A paginated field as the document asks for it: the page argument given (when none is, the
    ones it accepts: "first or last", and `given` is false), and its size: None when the value is
    not an integer or its variable is unset.
    """

    field: str
    argument: str
    given: bool
    size: int | None
    node: FieldNode


@dataclass(frozen=True, slots=True)
class QueryCost:
    """The measure of one operation. `fragment_visits` counts how often each fragment's
    selections were analysed: once each, however often it is spread.
    """

    cost: int
    depth: int
    aliases: int
    pages: tuple[PageRequest, ...]
    fragment_visits: Mapping[str, int]


def measure(
    document: DocumentNode,
    schema: GraphQLSchema,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> QueryCost:
    """Measure the operation the request selects (nothing, when it selects none: strawberry
    refuses such a request right after parsing)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return QueryCost(0, 0, 0, (), MappingProxyType({}))
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    defaults = {
        definition.variable.name.value: definition.default_value
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    analysis = _Analysis(schema, dict(variables or {}), defaults)
    for name in _in_dependency_order(operation.selection_set, fragments):
        analysis.measure_fragment(fragments[name])
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    measured = analysis.selection_set(operation.selection_set, root)
    return QueryCost(
        cost=measured.total(DEFAULT_LIST_SIZE),
        depth=measured.depth,
        aliases=measured.aliases,
        pages=tuple(analysis.pages),
        fragment_visits=MappingProxyType(dict(analysis.visits)),
    )


def refusal(measured: QueryCost, limits: QueryLimits) -> GraphQLError | None:
    """The first limit the query breaks, as the error its caller gets; None when it may run.
    Page sizes first (the most precise to act on), then depth, aliases, and cost."""
    cap = limits.max_page_size
    for page in measured.pages:
        if not page.given:
            return GraphQLError(
                f"{page.field} is paginated: give {page.argument}, from 1 to {cap}",
                page.node,
                extensions={"code": Refusal.PAGE_SIZE_REQUIRED.value, "limit": cap},
            )
        if page.size is None or not 1 <= page.size <= cap:
            return GraphQLError(
                f"{page.field}: {page.argument} must be an integer from 1 to {cap}, got "
                + ("no integer" if page.size is None else _shown(page.size)),
                page.node,
                extensions={"code": Refusal.PAGE_SIZE_INVALID.value, "limit": cap},
            )
    exceeded = (
        (measured.depth, limits.max_depth, Refusal.QUERY_TOO_DEEP, "the query is {} fields deep; the limit is {}"),
        (measured.aliases, limits.max_aliases, Refusal.TOO_MANY_ALIASES, "the query has {} aliases; the limit is {}"),
        (measured.cost, limits.max_cost, Refusal.QUERY_TOO_COMPLEX, "the query costs {}; the budget is {}"),
    )
    for value, limit, code, message in exceeded:
        if value > limit:
            return GraphQLError(
                message.format(_shown(value), limit),
                extensions={"code": code.value, "measured": value, "limit": limit},
            )
    return None


def _shown(value: int) -> str:
    return str(value) if abs(value) < MEASURE_CEILING else f"{'-' if value < 0 else ''}at least {MEASURE_CEILING}"


@dataclass(frozen=True, slots=True)
class _Measure:
    """A selection set's measure. `once` counts the fields resolved once per parent object;
    `per_item` what each item of the parent's lists adds, before it is multiplied by the items.
    """

    once: int = 0
    per_item: int = 0
    depth: int = 0
    aliases: int = 0

    def __add__(self, other: _Measure) -> _Measure:
        return _Measure(
            _capped(self.once + other.once),
            _capped(self.per_item + other.per_item),
            max(self.depth, other.depth),
            _capped(self.aliases + other.aliases),
        )

    def total(self, items: int) -> int:
        return _capped(self.once + items * self.per_item)


_NOTHING = _Measure()


def _capped(value: int) -> int:
    return min(value, MEASURE_CEILING)


class _Analysis:
    """One request's analysis: the memo of fragments measured, and what was seen on the way.

    Recursion follows the nesting of fields within one definition only (bounded by the parser:
    graphql-core refuses documents nested over 200 deep); fragments are measured in dependency
    order, so a chain of spreads never deepens the stack.
    """

    def __init__(self, schema: GraphQLSchema, variables: Mapping[str, Any], defaults: Mapping[str, ValueNode]) -> None:
        self.schema = schema
        self.variables = variables
        self.defaults = defaults
        self.memo: dict[str, _Measure] = {}
        self.visits: Counter[str] = Counter()
        self.pages: list[PageRequest] = []

    def measure_fragment(self, fragment: FragmentDefinitionNode) -> None:
        name = fragment.name.value
        self.visits[name] += 1
        self.memo[name] = self.selection_set(fragment.selection_set, self.named_type(fragment.type_condition))

    def named_type(self, node: NamedTypeNode | None) -> GraphQLNamedType | None:
        return None if node is None else self.schema.get_type(node.name.value)

    def selection_set(self, node: SelectionSetNode, parent: GraphQLNamedType | None) -> _Measure:
        measured = _NOTHING
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                measured += self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = parent if selection.type_condition is None else self.named_type(selection.type_condition)
                measured += self.selection_set(selection.selection_set, condition)
            elif isinstance(selection, FragmentSpreadNode):
                # measured already, or unknown, or closing a cycle: nothing more to count
                measured += self.memo.get(selection.name.value, _NOTHING)
        return measured

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> _Measure:
        definition = _field_definition(self.schema, parent, node.name.value)
        page_size = None if definition is None else self.page_size(node, definition, parent)
        children = (
            _NOTHING
            if node.selection_set is None
            else self.selection_set(node.selection_set, None if definition is None else get_named_type(definition.type))
        )
        depth = 1 + children.depth
        aliases = _capped((0 if node.alias is None else 1) + children.aliases)
        is_list = definition is not None and is_list_type(get_nullable_type(definition.type))
        if page_size is not None:
            # every item is a row the service reads, whatever is selected of it; a connection's
            # lists (its edges) hold the items, a paginated plain list is the items
            per_item = PAGE_ITEM_COST + (children.total(DEFAULT_LIST_SIZE) if is_list else children.per_item)
            once = 1 + (0 if is_list else children.once) + page_size * per_item
            return _Measure(once=_capped(once), depth=depth, aliases=aliases)
        if is_list:
            return _Measure(once=1, per_item=children.total(DEFAULT_LIST_SIZE), depth=depth, aliases=aliases)
        return _Measure(once=_capped(1 + children.total(DEFAULT_LIST_SIZE)), depth=depth, aliases=aliases)

    def page_size(self, node: FieldNode, definition: GraphQLField, parent: GraphQLNamedType | None) -> int | None:
        """The items a paginated field asks for (None when it is not paginated), each request
        recorded for the limits; a missing or invalid size counts 0 here and is refused there."""
        names = [name for name in PAGE_ARGUMENTS if name in definition.args]
        if not names:
            return None
        coordinate = f"{'?' if parent is None else parent.name}.{node.name.value}"
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        sizes = []
        for name in names:
            if name in given:
                size = self.integer(given[name])
            elif definition.args[name].default_value not in (Undefined, None):
                size = self.integer_value(definition.args[name].default_value)
            else:
                continue
            self.pages.append(PageRequest(coordinate, name, True, size, node))
            sizes.append(max(size or 0, 0))
        if not sizes:
            self.pages.append(PageRequest(coordinate, " or ".join(names), False, None, node))
        return max(sizes, default=0)

    def integer(self, value: ValueNode) -> int | None:
        if isinstance(value, VariableNode):
            name = value.name.value
            if name in self.variables:
                return self.integer_value(self.variables[name])
            default = self.defaults.get(name)
            return None if default is None or isinstance(default, VariableNode) else self.integer(default)
        if isinstance(value, IntValueNode):
            try:
                return int(value.value)
            except ValueError:  # more digits than Python converts: no page size
                return None
        return None

    @staticmethod
    def integer_value(value: object) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def _field_definition(schema: GraphQLSchema, parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
    if name == "__typename":
        return TypeNameMetaFieldDef
    if parent is not None and parent is schema.query_type:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        found: GraphQLField | None = parent.fields.get(name)
        return found
    return None


def _spreads(selection_set: SelectionSetNode) -> Iterator[str]:
    """The fragments a selection set spreads, at any depth of its own fields."""
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                yield selection.name.value
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set is not None:
                pending.append(selection.selection_set)


def _in_dependency_order(root: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """The known fragments the operation reaches, each after those it spreads (in a cycle, the
    fragment that closes it sees the other unmeasured): a depth-first walk without recursion.
    """
    order: list[str] = []
    seen: set[str] = set()
    walk: list[tuple[str, Iterator[str]]] = []

    def enter(name: str) -> None:
        if name in fragments and name not in seen:
            seen.add(name)
            walk.append((name, _spreads(fragments[name].selection_set)))

    for start in _spreads(root):
        enter(start)
        while walk:
            name, spread = walk[-1]
            following = next(spread, None)
            if following is None:
                walk.pop()
                order.append(name)
            else:
                enter(following)
    return order
