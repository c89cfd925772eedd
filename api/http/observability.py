"""One log line per request, written by an ASGI middleware when the request ends.

    {"event": "request", "request_id": "...", "method": "POST", "path": "/graphql", "status": 200,
     "latency_ms": 12.3, "source": "10.1.2.3", "role": "hospital", "org": "H310003",
     "operation": "mutation settle", "outcome": "OK", "level": "info", "at": "..."}

The layers below fill in what only they know through `note(...)`: the token gate the caller's
role and org, the GraphQL layer the operation and its outcome (the first error's code, a
mutation's typed error code, or OK). The notes live in a per-request object reached through a
context variable the middleware sets; `request_id` is bound into structlog's context variables,
so every line logged during the request carries it.

When the request ends, the middleware also hands what it knows (`Finished`) to an observer, if
the app gave one: the Prometheus metrics (api/http/metrics.py) are counted there.

A client's `X-Request-ID` is kept only when it looks generated (8 to 64 hex digits and dashes,
with a letter and no long run of digits): a cashier's system that sends a patient's ID number,
a name or a claim serial as its request id gets a new id instead, so none reaches the log.
Either way the id is echoed in the response's `X-Request-ID`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.ids import uuid7
from api.logs import describe, get_logger

log = get_logger("settle.http")

REQUEST_ID_HEADER = b"x-request-id"
_GENERATED = re.compile(r"[0-9A-Fa-f-]{8,64}")
_HEX_LETTER = re.compile(r"[A-Fa-f]")
_DIGIT_RUN = re.compile(r"[0-9]{13}")

OUTCOME_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "UNAVAILABLE",
}


@dataclass(slots=True)
class RequestNotes:
    """What the request line says beyond HTTP: who called and what came of it."""

    request_id: str
    source: str
    role: str | None = None
    org: str | None = None
    operation: str | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """A request as it ended, for the metrics: the same facts as its log line, nothing more."""

    path: str
    """The route's path, `(unmatched)` when none: never the query string."""
    status: int
    latency_seconds: float
    operation: str | None
    outcome: str


RequestObserver = Callable[[Finished], None]


_current: ContextVar[RequestNotes | None] = ContextVar("settle_request_notes", default=None)


def note(
    *, role: str | None = None, org: str | None = None, operation: str | None = None, outcome: str | None = None
) -> None:
    """Fill in the current request's line (outside a request: nothing). The first outcome noted
    stands: it is the first error, the one a caller acts on.
    """
    notes = _current.get()
    if notes is None:
        return
    if role is not None:
        notes.role = role
    if org is not None:
        notes.org = org
    if operation is not None:
        notes.operation = operation
    if outcome is not None and notes.outcome is None:
        notes.outcome = outcome


def accepted_request_id(value: str | None) -> str | None:
    if value is None or not _GENERATED.fullmatch(value):
        return None
    if not _HEX_LETTER.search(value) or _DIGIT_RUN.search(value):
        return None
    return value


def client_address(scope: Scope) -> str:
    """The peer's address (behind a proxy, uvicorn puts the forwarded one here for trusted proxies)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


INTERNAL_ERROR_BODY = (
    b'{"errors":[{"message":"internal error: the event is logged","extensions":{"code":"INTERNAL_ERROR"}}]}'
)


class RequestLog:
    """ASGI middleware: a request id for every HTTP request, and its line in the log when it ends.

    An exception escaping the app is logged here once, as `describe` renders it (classes and
    frames, no message), and answered 500; it goes no further, so that no server logs its message.
    `observe`, if given, is told of every request as it ends; its failure is logged, never the
    caller's.
    """

    def __init__(self, app: ASGIApp, observe: RequestObserver | None = None) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(_header(scope, REQUEST_ID_HEADER)) or str(uuid7())
        notes = RequestNotes(request_id, client_address(scope))
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id.encode("ascii"))]
                message = {**message, "headers": headers}
            await send(message)

        token = _current.set(notes)
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception as error:  # a bug or a failed database: logged without its message
                    log.error("unexpected error", **describe(error))
                    note(outcome="INTERNAL_ERROR")
                    if status == 0:
                        await _internal_error(send_with_id)
                finally:
                    latency_seconds = time.perf_counter() - started
                    finished = Finished(
                        getattr(scope.get("route"), "path", None) or "(unmatched)",
                        status,
                        latency_seconds,
                        notes.operation,
                        notes.outcome or _outcome_of(status),
                    )
                    log.info(
                        "request",
                        method=scope["method"],
                        path=finished.path,
                        status=status,
                        latency_ms=round(latency_seconds * 1000, 1),
                        source=notes.source,
                        role=notes.role,
                        org=notes.org,
                        operation=notes.operation,
                        outcome=finished.outcome,
                    )
                    if self.observe is not None:
                        try:
                            self.observe(finished)
                        except Exception as error:  # the metrics must never cost the caller an answer
                            log.error("recording the request's metrics failed", **describe(error))
        finally:
            _current.reset(token)


def _outcome_of(status: int) -> str:
    if status == 0:
        return "NO_RESPONSE"
    if status < 400:
        return "OK"
    return OUTCOME_BY_STATUS.get(status, f"HTTP_{status}")


async def _internal_error(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(INTERNAL_ERROR_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": INTERNAL_ERROR_BODY})
