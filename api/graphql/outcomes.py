"""What the request line says of a GraphQL request (api/http/observability.py): the operation,
named by the schema's root fields it selects (its outcome is the first error's code).

The operation is named from the schema, not from the request: a client's operation name and
its aliases are words the caller chose (they could hold anything), the root fields are ours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.utilities import get_operation_ast

INTROSPECTION = frozenset({"__schema", "__type", "__typename"})
NAMES_MAX = 8
"""Root fields named in the line; beyond, `+N`."""


def operation(
    document: DocumentNode, operation_name: str | None, root_fields: Mapping[str, frozenset[str]]
) -> str | None:
    """`mutation settle`, `query institution,person`: the kind and the root fields of the schema
    the operation selects (a field the schema does not have is left out).
    """
    selected = get_operation_ast(document, operation_name)
    if selected is None:
        return None
    kind = selected.operation.value
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    known = root_fields.get(kind, frozenset()) | INTROSPECTION
    names = sorted({name for name in _fields(selected.selection_set, fragments, set()) if name in known})
    if len(names) > NAMES_MAX:
        names = [*names[:NAMES_MAX], f"+{len(names) - NAMES_MAX}"]
    return f"{kind} {','.join(names)}" if names else kind


def _fields(
    selection_set: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: set[str]
) -> Iterator[str]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set, fragments, seen)
