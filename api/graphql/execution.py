"""One GraphQL request, from its text to its result: parse, check, validate, execute, code the errors.

The steps, each refusing before the next costs anything:

    parse        cached by document text; bounded in characters and tokens
    operation    the one operation to run (by `operationName`); mutations only where allowed
    strings      no NUL, no lone surrogate, no other control character in any string given
    cost         page sizes, depth, aliases and cost of the operation, computed once, fragments
                 measured once each (api/graphql/cost.py): a refused document is never validated
    validate     graphql-core's rules (+ strawberry's), cached by document text; no suggestions and
                 no introspection in production
    execute      graphql-core with strawberry's resolvers; field errors are coded, the unexpected
                 ones masked

Every error leaves with a stable `extensions.code`. A request error (nothing executed: a parse,
validation, limit or coercion failure) is told apart from a field error, because GraphQL over
HTTP answers them with different status codes.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    execute,
    parse,
    specified_rules,
    validate,
)
from graphql.language import Visitor, visit
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from api.graphql import cost
from api.graphql.failures import describe
from api.graphql.outcomes import operation as named_operation

log = logging.getLogger("settle.graphql")


class EdgeCode(StrEnum):
    """Codes of what the edge refuses before (or instead of) a resolver's own answer."""

    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    DOCUMENT_TOO_LARGE = "DOCUMENT_TOO_LARGE"
    TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
    TOO_MANY_OPERATIONS = "TOO_MANY_OPERATIONS"
    DOCUMENT_NOT_TRUSTED = "DOCUMENT_NOT_TRUSTED"
    INVALID_STRING = "INVALID_STRING"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    OPERATION_NOT_FOUND = "OPERATION_NOT_FOUND"
    OPERATION_NAME_REQUIRED = "OPERATION_NAME_REQUIRED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    RETRYABLE_FAILURE = "RETRYABLE_FAILURE"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may ask of the service (every one a setting)."""

    document_chars: int = 20_000
    tokens: int = 5_000
    operations: int = 20
    string_chars: int = 10_000
    query: cost.QueryLimits = field(default_factory=cost.QueryLimits)
    production: bool = False


ErrorBody = Mapping[str, object]
"""One error of an answer, as JSON: `message`, `locations`, `path`, `extensions` (with its `code`)."""


class Refused(Exception):
    """A request refused before execution: one error with a stable code."""

    def __init__(self, code: EdgeCode | str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.status = status

    def error(self) -> ErrorBody:
        return {"message": self.message, "extensions": {"code": self.code}}


@dataclass(slots=True)
class Outcome:
    """The answer to one GraphQL request, ready to serialize."""

    errors: list[ErrorBody]
    data: dict[str, Any] | None = None
    executed: bool = True
    """False for a request error: nothing ran, and `data` is absent from the answer."""
    operation: str | None = None
    """For the request log: the kind and root fields run (`mutation settle`), never the client's words."""
    extensions: dict[str, object] = field(default_factory=dict)

    @property
    def code(self) -> str:
        """The outcome for the request log: the first error's code, or OK."""
        if not self.errors:
            return "OK"
        extensions = self.errors[0].get("extensions", {})
        if not isinstance(extensions, Mapping):
            return str(EdgeCode.INTERNAL_ERROR)
        return str(extensions.get("code", EdgeCode.INTERNAL_ERROR))

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {}
        if self.errors:
            body["errors"] = self.errors
        if self.executed:
            body["data"] = self.data
        if self.extensions:
            body["extensions"] = self.extensions
        return body

    @classmethod
    def refused(cls, refusal: Refused, operation: str | None = None) -> Outcome:
        return cls(errors=[refusal.error()], executed=False, operation=operation)


Key = TypeVar("Key", bound=Hashable)
Cached = TypeVar("Cached")


class _LRU(Generic[Key, Cached]):
    """A bounded cache by document text (parses, validations; names and costs by a key that
    starts with it).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Key, Cached] = OrderedDict()

    def get(self, key: Key) -> Cached | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: Key, value: Cached) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


CACHE_SIZE = 256
"""Distinct documents whose parse and validation are kept (clients are many, documents few)."""


class _BadStrings(Visitor):
    """Finds the first string literal of a document that no column may hold."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.problem: str | None = None

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        self.problem = string_problem(node.value, self.limit)
        return self.BREAK if self.problem else None


def string_problem(value: str, limit: int) -> str | None:
    """Why a string given by a client cannot be taken, or None: too long, or holding a NUL, a
    control character other than tab and line breaks, or half of a UTF-16 surrogate pair (which
    no database column can store).
    """
    if len(value) > limit:
        return f"a string of {len(value)} characters is longer than the {limit} allowed"
    for character in value:
        point = ord(character)
        if point < 0x20 and character not in "\t\n\r":
            return f"a string holds the control character U+{point:04X}"
        if 0xD800 <= point <= 0xDFFF:
            return "a string holds a lone UTF-16 surrogate"
    return None


def _variable_problem(value: object, limit: int) -> str | None:
    """The first bad string anywhere in the variables (keys included), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = string_problem(item, limit)
            if problem:
                return problem
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


class Executor:
    """Runs GraphQL requests against the schema under the edge's limits."""

    def __init__(self, schema: strawberry.Schema, limits: Limits) -> None:
        self.schema = schema
        self.limits = limits
        self.root_fields = {
            kind: frozenset(root.fields) if root is not None else frozenset()
            for kind, root in (("query", schema._schema.query_type), ("mutation", schema._schema.mutation_type))
        }
        self.documents: _LRU[str, DocumentNode | Refused] = _LRU(CACHE_SIZE)
        self.validations: _LRU[str, list[GraphQLError]] = _LRU(CACHE_SIZE)
        self.names: _LRU[tuple[str, str | None], str | None] = _LRU(CACHE_SIZE)
        self.costs: _LRU[Hashable, tuple[GraphQLError | None]] = _LRU(CACHE_SIZE)
        rules: list[type[ASTValidationRule]] = [
            *specified_rules,
            MaybeNullValidationRule,
            OneOfInputValidationRule,
        ]
        if limits.production:
            rules.append(NoSchemaIntrospectionCustomRule)
        self.rules = tuple(rules)

    async def run(
        self,
        query: str,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
        context: Any,
        *,
        mutations_allowed: bool = True,
    ) -> Outcome:
        try:
            document = self._parse(query)
            operation = self._operation(document, operation_name)
        except Refused as refusal:
            return Outcome.refused(refusal)
        name = self.names.get((query, operation_name))
        if name is None:
            name = named_operation(document, operation_name, self.root_fields) or ""
            self.names.put((query, operation_name), name)
        name = name or None
        try:
            if operation.operation is not OperationType.QUERY and not mutations_allowed:
                raise Refused(EdgeCode.METHOD_NOT_ALLOWED, "only queries may be sent with GET; use POST", 405)
            problem = _variable_problem(variables, self.limits.string_chars) if variables else None
            if problem:
                raise Refused(EdgeCode.INVALID_STRING, f"variables: {problem}")
        except Refused as refusal:
            return Outcome.refused(refusal, name)
        too_much = self._too_costly(query, document, variables, operation_name)
        if too_much is not None:
            return Outcome([too_much.formatted], executed=False, operation=name)
        errors = self._validate(query, document)
        if errors:
            return Outcome(
                [self._coded(e, EdgeCode.GRAPHQL_VALIDATION_FAILED) for e in errors], executed=False, operation=name
            )
        result = execute(
            self.schema._schema,
            document,
            variable_values=dict(variables) if variables else None,
            operation_name=operation_name,
            context_value=context,
            executor_class=self.schema.execution_context_class,
            hide_suggestions=self.limits.production,
        )
        if not isinstance(result, ExecutionResult):
            result = await result
        return self._outcome(result, name)

    def _too_costly(
        self, query: str, document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None
    ) -> GraphQLError | None:
        """The refusal of a document that asks too much, or None. A document's cost depends on
        its variables only through the page sizes they give (top-level scalars; an input object
        is never one), so it is measured once per document, operation and top-level scalars.
        """
        scalars = (str, int, float, type(None))
        sizes = tuple(sorted((k, v) for k, v in (variables or {}).items() if isinstance(v, scalars)))
        key = (query, operation_name, sizes)
        cached = self.costs.get(key)
        if cached is None:
            measured = cost.measure(document, self.schema._schema, variables, operation_name)
            cached = (cost.refusal(measured, self.limits.query),)
            self.costs.put(key, cached)
        refusal: GraphQLError | None = cached[0]
        return refusal

    def _parse(self, query: str) -> DocumentNode:
        if len(query) > self.limits.document_chars:
            raise Refused(
                EdgeCode.DOCUMENT_TOO_LARGE,
                f"the document has {len(query)} characters; at most {self.limits.document_chars} are allowed",
            )
        cached = self.documents.get(query)
        if isinstance(cached, Refused):
            raise cached
        if cached is not None:
            return cached
        try:
            document = parse(query, max_tokens=self.limits.tokens)
            refusal = self._document_problem(document)
        except GraphQLSyntaxError as error:
            refusal = self._syntax_refusal(error)
        if refusal is not None:
            self.documents.put(query, refusal)
            raise refusal
        self.documents.put(query, document)
        return document

    def _syntax_refusal(self, error: GraphQLSyntaxError) -> Refused:
        if "token limit" in error.message:
            return Refused(
                EdgeCode.TOO_MANY_TOKENS, f"the document has more than the {self.limits.tokens} tokens allowed"
            )
        return Refused(EdgeCode.GRAPHQL_PARSE_FAILED, error.message)

    def _document_problem(self, document: DocumentNode) -> Refused | None:
        operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
        if operations > self.limits.operations:
            return Refused(
                EdgeCode.TOO_MANY_OPERATIONS,
                f"the document defines {operations} operations; at most {self.limits.operations} are allowed",
            )
        strings = _BadStrings(self.limits.string_chars)
        visit(document, strings)
        if strings.problem:
            return Refused(EdgeCode.INVALID_STRING, strings.problem)
        return None

    @staticmethod
    def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if name is None:
            if len(operations) == 1:
                return operations[0]
            if not operations:
                raise Refused(EdgeCode.GRAPHQL_VALIDATION_FAILED, "the document defines no operation to run")
            raise Refused(
                EdgeCode.OPERATION_NAME_REQUIRED,
                "the document defines several operations: name the one to run in operationName",
            )
        for operation in operations:
            if operation.name is not None and operation.name.value == name:
                return operation
        raise Refused(EdgeCode.OPERATION_NOT_FOUND, "the document defines no operation of that name")

    def _validate(self, query: str, document: DocumentNode) -> list[GraphQLError]:
        cached = self.validations.get(query)
        if cached is not None:
            return cached
        errors = validate(self.schema._schema, document, self.rules, hide_suggestions=self.limits.production)
        self.validations.put(query, errors)
        return errors

    def _outcome(self, result: ExecutionResult, operation: str | None) -> Outcome:
        errors = result.errors or []
        # A result with no data and errors without a path failed before any field ran: the
        # variables could not be coerced (a request error, in GraphQL over HTTP's terms).
        if result.data is None and errors and all(error.path is None for error in errors):
            return Outcome(
                [self._coded(e, EdgeCode.BAD_USER_INPUT) for e in errors], executed=False, operation=operation
            )
        return Outcome([self._field_error(e) for e in errors], data=result.data, operation=operation)

    def _coded(self, error: GraphQLError, code: EdgeCode) -> ErrorBody:
        formatted = error.formatted
        extensions = dict(formatted.get("extensions") or {})
        extensions.setdefault("code", code.value)
        return {**formatted, "extensions": extensions}

    def _field_error(self, error: GraphQLError) -> ErrorBody:
        """A field's error: its own code when it has one; otherwise what `describe` makes of its
        cause (a transient database failure is retryable; anything unexpected is masked).
        """
        if error.original_error is None or isinstance(error.original_error, GraphQLError):
            return self._coded(error, EdgeCode.INTERNAL_ERROR)
        failure = describe(error.original_error)
        formatted = error.formatted
        return {
            "message": failure.message,
            "locations": formatted.get("locations"),
            "path": formatted.get("path"),
            "extensions": failure.extensions(),
        }
