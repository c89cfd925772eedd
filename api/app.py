"""create_app(settings): the Starlette application. Its lifespan owns the database engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from strawberry.http.ides import get_graphql_ide_html

from api import exports
from api.auth import Principal, Role, TokenVerifier, Unauthenticated, build_verifier, unverified_token_id
from api.crypto.envelope import FieldCipher
from api.crypto.management import open_keyring
from api.db import models
from api.db.migrate import current_revision, head_revision, upgrade
from api.db.session import create_engine, create_sessionmaker
from api.graphql.context import Context
from api.graphql.execution import Executor
from api.graphql.schema import build_schema
from api.http.graphql import GraphQLOverHTTP, TrustedDocuments
from api.services import audit, audit_chain, audit_witness
from api.services.access import SYSTEM
from api.services.facts import VersionCache
from api.services.runtime import Runtime
from api.settings import Settings

log = logging.getLogger("settle")


def utc_now() -> datetime:
    return datetime.now(UTC)


def graphql_endpoint(settings: Settings, state: dict[str, Any]) -> GraphQLOverHTTP:
    """`/graphql` for verified callers: each request runs with a typed context naming its caller."""

    async def context(request: Request) -> Context:
        shared: Context = state["context"]
        return replace(shared, principal=request.scope["principal"])

    def body_bytes(request: Request) -> int:
        """Reference data sets are large; what cashiers and everyone else send is not."""
        admin = request.scope["principal"].role is Role.ADMIN
        return settings.max_admin_body_bytes if admin else settings.max_body_bytes

    trusted = TrustedDocuments.load(settings.trusted_documents) if settings.trusted_documents else None
    return GraphQLOverHTTP(Executor(build_schema(), settings.limits), context, body_bytes=body_bytes, trusted=trusted)


def graphiql_page(request: Request) -> Response:
    return HTMLResponse(get_graphql_ide_html(subscription_enabled=False, replace_placeholders=True))


class Authenticated:
    """ASGI wrapper: a request reaches the wrapped app only with a valid bearer token (its
    Principal in `scope["principal"]`); anything else is answered 401 UNAUTHENTICATED and the
    attempt is audited. In development, the GraphiQL page itself (a GET for HTML) is open.
    """

    def __init__(self, app: Any, state: dict[str, Any], *, ide: Callable[[Request], Response] | None = None) -> None:
        self.app = app
        self.state = state
        self.ide = ide

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope)
        if self.ide is not None and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            await self.ide(request)(scope, receive, send)  # the page only: every query it sends is checked
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        verifier: TokenVerifier = self.state["verifier"]
        try:
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated
            scope["principal"] = verifier.verify(token.strip())
        except Unauthenticated:
            context: Context = self.state["context"]
            await audit.append_alone(
                context.runtime.sessions,
                audit.AuditRecord(
                    actor=audit.Actor(token_id=unverified_token_id(token.strip()) if token else None),
                    action=f"{request.method} {request.url.path}",
                    outcome="unauthenticated",
                    at=context.runtime.clock(),
                ),
            )
            response = JSONResponse(
                {"errors": [{"message": Unauthenticated.MESSAGE, "extensions": {"code": "UNAUTHENTICATED"}}]},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="settle"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker[AsyncSession]]]:
    """The engine and sessions for the app's lifetime. In development the schema is brought to
    the head revision (and the lifespan loads the demo data set into an empty database);
    production expects `settle db upgrade` to have run (and /readyz says so).
    """
    engine = create_engine(settings.database_url)
    sessions = create_sessionmaker(engine)
    try:
        if settings.development:
            await upgrade(engine, settings.migrations)
        yield engine, sessions
    finally:
        await engine.dispose()


async def load_demo_if_empty(runtime: Runtime) -> None:
    from api.demo import demo_document
    from api.services.loading import load_document

    async with runtime.sessions() as session:
        institutions = (await session.execute(select(func.count()).select_from(models.Institution))).scalar_one()
    if institutions == 0:
        log.warning("loading the demo data set into an empty development database")
        await load_document(runtime, SYSTEM, demo_document())


async def seal_forever(runtime: Runtime, settings: Settings) -> None:
    """Seal committed audit entries into the hash chain, every SETTLE_AUDIT_SEAL_SECONDS (0: never),
    signing checkpoints and handing them to the file witness.
    """
    every_seconds = settings.audit_seal_seconds
    if every_seconds <= 0:
        return
    sealer = audit_chain.Sealer(
        runtime.sessions,
        runtime.cipher.keyring,
        timedelta(seconds=settings.audit_checkpoint_seconds),
        audit_witness.file_witness(settings),
    )
    while True:
        try:
            await sealer.seal(runtime.clock())
        except Exception:  # the next round retries; the failure must be seen, not kill the service
            log.exception("sealing the audit log failed")
        await asyncio.sleep(every_seconds)


class Export:
    """A CSV export route: the handler gets the request, the shared context and the caller."""

    def __init__(
        self, handler: Callable[[Request, Context, Principal], Awaitable[Response]], state: dict[str, Any]
    ) -> None:
        self.handler = handler
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        response = await self.handler(Request(scope), self.state["context"], scope["principal"])
        await response(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    state: dict[str, Any] = {}
    dev = settings.development
    graphql = graphql_endpoint(settings, state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with database(settings) as (engine, sessions):
            state["engine"] = engine
            state["verifier"] = build_verifier(settings.keys_dir, settings.token_audience, development=dev)
            cipher = FieldCipher(open_keyring(settings), sessions, settings.values_per_data_key)
            audit.bind(sessions, cipher.keyring)
            if settings.audit_seal_seconds > 0:
                audit_witness.file_witness(settings)  # production names its witness, or refuses to start
            runtime = Runtime(
                sessions,
                VersionCache.bounded(),
                cipher,
                utc_now,
                settings.key_wait_ms,
                timedelta(days=settings.reuse_window_days),
            )
            if settings.development and settings.demo_data:
                await load_demo_if_empty(runtime)
            state["context"] = Context(settings=settings, runtime=runtime, principal=SYSTEM)
            sealer = asyncio.create_task(seal_forever(runtime, settings))
            try:
                yield
            finally:
                sealer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sealer
        state.clear()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        engine: AsyncEngine = state["engine"]
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            revision = await current_revision(engine)
        except Exception as error:  # the database is down or unreachable: not ready, say why
            return JSONResponse({"status": "unavailable", "reason": type(error).__name__}, status_code=503)
        head = head_revision(settings.migrations)
        if revision != head:
            return JSONResponse({"status": "migrations pending", "revision": revision, "head": head}, status_code=503)
        return JSONResponse({"status": "ready", "revision": revision})

    return Starlette(
        routes=[
            Route(
                "/graphql", Authenticated(graphql, state, ide=graphiql_page if dev else None)
            ),  # every method reaches the endpoint, which answers the ones it does not take with a typed 405
            *(
                Route(f"/exports/{name}.csv", Authenticated(Export(handler, state), state), methods=["GET"])
                for name, handler in (
                    ("anomalies", exports.anomalies),
                    ("trace-code", exports.trace_code),
                    ("risk", exports.risk),
                )
            ),
            Route(
                "/audit/checkpoints", Authenticated(Export(exports.audit_checkpoints, state), state), methods=["GET"]
            ),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )


def create_app_from_environment() -> Starlette:
    """The factory `settle serve` hands uvicorn (each worker process builds its own app)."""
    return create_app(Settings.from_environment())
