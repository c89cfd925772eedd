"""`/graphql` over HTTP, as the GraphQL-over-HTTP specification describes it.

    POST  application/json body {query, operationName?, variables?, extensions?}
    GET   ?query=&operationName=&variables=&extensions= (queries only: a mutation is 405)

The answer is `application/graphql-response+json` when the client accepts it, else
`application/json`. A request error (the body or the document refused, nothing executed) is 400
under the first and 200 under the second, which predates the distinction; HTTP-level refusals
(a malformed body, a body over the limit, a wrong media type or method) are 4xx under both.
Every refusal is a GraphQL-shaped body whose errors carry `extensions.code`; no body the client
can send makes the service answer 500.

The body is read against its limit before it is parsed; the request's caller is already verified
(the `Authenticated` wrapper in `api/app.py` runs first).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.graphql.execution import EdgeCode, Executor, Outcome, Refused
from api.http.observability import note

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
NO_STORE = {"cache-control": "no-store"}
"""Answers may carry personal data: no cache (browser, proxy) may keep them."""


@dataclass(frozen=True, slots=True)
class Params:
    """The request's GraphQL parameters, checked for shape."""

    query: str
    operation_name: str | None
    variables: dict[str, Any] | None


def accepted_type(accept: str | None) -> str | None:
    """The media type to answer in, from the Accept header; None when nothing we speak is acceptable.

    The newer `application/graphql-response+json` wins when the client names it at least as
    highly as `application/json`; wildcards and a missing header mean `application/json`.
    """
    if not accept or not accept.strip():
        return JSON
    best: tuple[int, int] | None = None
    chosen: str | None = None
    for part in accept.split(","):
        media, _, parameters = part.strip().partition(";")
        media = media.strip().lower()
        quality = 1000
        for parameter in parameters.split(";"):
            key, _, value = parameter.strip().partition("=")
            if key.strip().lower() == "q":
                quality = _quality(value)
        if quality == 0:
            continue
        if media == GRAPHQL_RESPONSE:
            rank, answer = (quality, 2), GRAPHQL_RESPONSE
        elif media in (JSON, "application/*", "*/*"):
            rank, answer = (quality, 1 if media == JSON else 0), JSON
        else:
            continue
        if best is None or rank > best:
            best, chosen = rank, answer
    return chosen


def _quality(value: str) -> int:
    """A q-value in thousandths (q=0.5 -> 500); a malformed one counts as 1."""
    whole, _, fraction = value.strip().partition(".")
    if whole not in ("0", "1") or not (fraction + "0").isdigit() or len(fraction) > 3:
        return 1000
    return min(1000, int(whole) * 1000 + int(fraction.ljust(3, "0") or 0))


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str | bytes, what: str) -> object:
    """JSON as the specification has it (UTF-8, no NaN or Infinity); any failure is a typed refusal."""
    try:
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise Refused(EdgeCode.MALFORMED_REQUEST, f"{what} is not valid JSON") from None


def _params(body: object, trusted: TrustedDocuments | None) -> Params:
    if not isinstance(body, dict):
        raise Refused(EdgeCode.MALFORMED_REQUEST, "the body is one JSON object; batches are not accepted")
    query, name = body.get("query"), body.get("operationName")
    variables, extensions = body.get("variables"), body.get("extensions")
    if name is not None and not isinstance(name, str):
        raise Refused(EdgeCode.MALFORMED_REQUEST, "operationName is a string")
    if variables is not None and not isinstance(variables, dict):
        raise Refused(EdgeCode.MALFORMED_REQUEST, "variables is a JSON object")
    if extensions is not None and not isinstance(extensions, dict):
        raise Refused(EdgeCode.MALFORMED_REQUEST, "extensions is a JSON object")
    if trusted is not None:
        query = trusted.document(query, body.get("documentId"), extensions)
    if not isinstance(query, str):
        raise Refused(EdgeCode.MALFORMED_REQUEST, "query is a string holding a GraphQL document")
    return Params(query, name, variables)


def _form_params(values: Mapping[str, str], trusted: TrustedDocuments | None) -> Params:
    """GET's parameters: `variables` and `extensions` are JSON texts."""
    body: dict[str, object] = {key: values[key] for key in ("query", "operationName", "documentId") if key in values}
    for key in ("variables", "extensions"):
        if values.get(key):
            body[key] = parse_json(values[key], key)
    return _params(body, trusted)


class TrustedDocuments:
    """Trusted-documents mode: only documents of a manifest run.

    The manifest is a JSON object mapping `sha256:<hex>` to the document's text (the form
    GraphQL codegen's persisted-documents preset writes). A request names its document by
    `documentId` (or Apollo's `extensions.persistedQuery.sha256Hash`), or sends a query whose
    SHA-256 is in the manifest; anything else is refused.
    """

    def __init__(self, documents: Mapping[str, str]) -> None:
        self.documents = dict(documents)

    @classmethod
    def load(cls, path: Path) -> TrustedDocuments:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or not all(
            isinstance(k, str) and k.startswith("sha256:") and isinstance(v, str) for k, v in manifest.items()
        ):
            raise ValueError(f"{path}: a trusted-documents manifest maps 'sha256:<hex>' to a document")
        for key, text in manifest.items():
            if key != digest(text):
                raise ValueError(f"{path}: {key} is not the SHA-256 of its document")
        return cls(manifest)

    def document(self, query: object, document_id: object, extensions: Mapping[str, Any] | None) -> str:
        persisted = (extensions or {}).get("persistedQuery")
        if document_id is None and isinstance(persisted, dict) and isinstance(persisted.get("sha256Hash"), str):
            document_id = f"sha256:{persisted['sha256Hash']}"
        if document_id is None and isinstance(query, str):
            document_id = digest(query)
        text = self.documents.get(document_id) if isinstance(document_id, str) else None
        if text is None:
            raise Refused(EdgeCode.DOCUMENT_NOT_TRUSTED, "only the service's trusted documents may be run here")
        return text


def digest(document: str) -> str:
    return "sha256:" + hashlib.sha256(document.encode("utf-8")).hexdigest()


def answer(body: Mapping[str, Any], status: int, media_type: str, headers: Mapping[str, str] | None = None) -> Response:
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(
        content, status_code=status, media_type=f"{media_type}; charset=utf-8", headers={**NO_STORE, **(headers or {})}
    )


def refusal_answer(refusal: Refused, media_type: str, headers: Mapping[str, str] | None = None) -> Response:
    return answer({"errors": [refusal.error()]}, refusal.status, media_type, headers)


ContextFactory = Callable[[Request], Awaitable[Any]]


class GraphQLOverHTTP:
    """The ASGI app behind `/graphql` for verified callers."""

    def __init__(
        self,
        executor: Executor,
        context: ContextFactory,
        *,
        body_bytes: Callable[[Request], int],
        trusted: TrustedDocuments | None = None,
    ) -> None:
        self.executor = executor
        self.context = context
        self.body_bytes = body_bytes
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.respond(request)
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        media_type = accepted_type(request.headers.get("accept"))
        if media_type is None:
            refusal = Refused(
                EdgeCode.NOT_ACCEPTABLE, f"this endpoint answers in {GRAPHQL_RESPONSE} or {JSON}", status=406
            )
            note(outcome=refusal.code)
            return refusal_answer(refusal, JSON)
        try:
            params = await self._read(request)
        except Refused as refusal:
            note(outcome=refusal.code)
            headers = {"allow": "GET, POST"} if refusal.status == 405 else None
            return refusal_answer(refusal, media_type, headers)
        except ClientDisconnect:
            return Response(status_code=400)
        outcome = await self.executor.run(
            params.query,
            params.variables,
            params.operation_name,
            await self.context(request),
            mutations_allowed=request.method == "POST",
        )
        note(operation=outcome.operation)
        if outcome.errors:
            note(outcome=outcome.code)
        return answer(outcome.body(), self._status(outcome, media_type), media_type, self._headers(outcome))

    async def _read(self, request: Request) -> Params:
        if request.method == "GET":
            return _form_params(request.query_params, self.trusted)
        if request.method != "POST":
            raise Refused(EdgeCode.METHOD_NOT_ALLOWED, "use POST, or GET for a query", status=405)
        media, _, parameters = request.headers.get("content-type", "").partition(";")
        if media.strip().lower() != JSON:
            raise Refused(EdgeCode.UNSUPPORTED_MEDIA_TYPE, f"send the request as {JSON}", status=415)
        charset = next(
            (
                value.strip().strip('"').lower()
                for key, _, value in (p.partition("=") for p in parameters.split(";"))
                if key.strip().lower() == "charset"
            ),
            "utf-8",
        )
        if charset not in ("utf-8", "utf8"):
            raise Refused(EdgeCode.UNSUPPORTED_MEDIA_TYPE, "the request's charset is utf-8", status=415)
        body = await self._body(request)
        if not body.strip():
            raise Refused(EdgeCode.MALFORMED_REQUEST, "the request has no body")
        return _params(parse_json(body, "the body"), self.trusted)

    async def _body(self, request: Request) -> bytes:
        """The body, refused as soon as it is known to exceed the caller's limit (by its declared
        length, or while it arrives): a large body is never held in memory.
        """
        limit = self.body_bytes(request)
        too_large = Refused(
            EdgeCode.BODY_TOO_LARGE, f"the request body is larger than the {limit} bytes allowed", status=413
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _status(outcome: Outcome, media_type: str) -> int:
        if outcome.executed:
            return 200
        if outcome.code == EdgeCode.METHOD_NOT_ALLOWED:
            return 405
        return 400 if media_type == GRAPHQL_RESPONSE else 200

    @staticmethod
    def _headers(outcome: Outcome) -> dict[str, str] | None:
        return {"allow": "POST"} if outcome.code == EdgeCode.METHOD_NOT_ALLOWED else None
