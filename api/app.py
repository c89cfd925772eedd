"""create_app(settings): the Starlette application. Its lifespan owns the database engine."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api import exports, slips
from api.auth import Principal, Role, TokenVerifier, Unauthenticated, build_verifier, unverified_token_id
from api.crypto.envelope import FieldCipher
from api.crypto.management import open_keyring
from api.db import models
from api.db.migrate import current_revision, head_revision, upgrade
from api.db.references import VersionCache
from api.db.session import create_engine, create_sessionmaker
from api.db.statements import exclusively
from api.graphql.context import Context
from api.graphql.execution import Executor
from api.graphql.schema import build_schema
from api.http.abuse import Limits, RefusalTally, rate_limited
from api.http.graphql import GraphQLOverHTTP, TrustedDocuments
from api.http.ide import GraphiQLPage
from api.http.metrics import AdministratorsOnly, Scrape, ScraperGate, ServiceMetrics, multiprocess_folder
from api.http.observability import RequestLog, client_address, note
from api.logs import configure_structlog, describe, get_logger, install
from api.serve import Readiness
from api.services import audit, audit_chain, audit_witness
from api.services.access import SYSTEM
from api.services.runtime import Runtime
from api.settings import InvalidSetting, Settings

log = get_logger("settle")

REFUSALS_FLUSH_SECONDS = 1.0
"""How often the service looks for a closed minute of refused tokens to write to the audit log."""


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


class Authenticated:
    """ASGI wrapper: a request reaches the wrapped app only with a valid bearer token (its
    Principal in `scope["principal"]`); anything else is answered 401 UNAUTHENTICATED and counted
    for the audit log (one row per client address and minute: api/http/abuse.py). The client
    address's rate limit is spent before the token is verified (a flood of bad tokens costs no
    signature checks beyond it), the token's after; past either, 429 RATE_LIMITED. In development,
    the GraphiQL page itself (a GET for HTML) is open.
    """

    def __init__(self, app: ASGIApp, state: dict[str, Any], *, ide: GraphiQLPage | None = None) -> None:
        self.app = app
        self.state = state
        self.ide = ide

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        if self.ide is not None and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            page = self.ide.response(request)  # the page only: every query it sends is checked
            await page(scope, receive, send)
            return
        limits: Limits = self.state["limits"]
        source = client_address(scope)
        wait_seconds = limits.source(source)
        if wait_seconds is not None:
            await rate_limited(wait_seconds)(scope, receive, send)
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        verifier: TokenVerifier = self.state["verifier"]
        try:
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated
            principal = verifier.verify(token.strip())
        except Unauthenticated:
            refusals: RefusalTally = self.state["refusals"]
            refusals.count(source, unverified_token_id(token.strip()) if token else None)
            note(outcome="UNAUTHENTICATED")
            response = JSONResponse(
                {"errors": [{"message": Unauthenticated.MESSAGE, "extensions": {"code": "UNAUTHENTICATED"}}]},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="settle"'},
            )
            await response(scope, receive, send)
            return
        note(role=principal.role.value, org=principal.org)
        wait_seconds = limits.token(principal.token_id)
        if wait_seconds is not None:
            await rate_limited(wait_seconds)(scope, receive, send)
            return
        scope["principal"] = principal
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


async def load_demo_if_empty(engine: AsyncEngine, runtime: Runtime) -> None:
    from api.demo import demo_document
    from api.services.loading import load_document

    async with exclusively(engine, "demo-data"):  # the first worker loads; the others find it loaded
        async with runtime.sessions() as session:
            institutions = (await session.execute(select(func.count()).select_from(models.Institution))).scalar_one()
        if institutions == 0:
            log.warning("loading the demo data set into an empty development database")
            await load_document(runtime, SYSTEM, demo_document())


def sealer_of(runtime: Runtime, settings: Settings) -> audit_chain.Sealer:
    """The sealer of this process: it signs checkpoints and hands them to the file witness."""
    return audit_chain.Sealer(
        runtime.sessions,
        runtime.cipher.keyring,
        timedelta(seconds=settings.audit_checkpoint_seconds),
        audit_witness.file_witness(settings),
    )


async def seal_once(sealer: audit_chain.Sealer, runtime: Runtime) -> None:
    try:
        await sealer.seal(runtime.clock())
    except Exception as error:  # the next round retries; the failure must be seen, not kill the service
        log.error("sealing the audit log failed", **describe(error))


async def seal_forever(sealer: audit_chain.Sealer, runtime: Runtime, every_seconds: float) -> None:
    """Seal committed audit entries into the hash chain every `every_seconds`."""
    while True:
        await seal_once(sealer, runtime)
        await asyncio.sleep(every_seconds)


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Export:
    """A CSV export route: the handler gets the request, the shared context and the caller."""

    def __init__(
        self, handler: Callable[[Request, Context, Principal], Awaitable[Response]], state: dict[str, Any]
    ) -> None:
        self.handler = handler
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handler(Request(scope), self.state["context"], scope["principal"])
        await response(scope, receive, send)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Starlette:
    """The service. `clock` (UTC) is the one every use case reads; tests inject one to close a
    minute, refill a rate limit or fix today's date without waiting. The refused tokens' tally is
    on `app.state.refusals` once started.
    """
    configure_structlog()
    state: dict[str, Any] = {}
    dev = settings.development
    readiness = Readiness.from_environment()
    metrics = ServiceMetrics(multiprocess=multiprocess_folder())
    graphql = graphql_endpoint(settings, state)
    ide = GraphiQLPage.load() if dev else None  # served from the package: no CDN, nothing leaves the machine

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with database(settings) as (engine, sessions):
            state["engine"] = engine
            state["verifier"] = build_verifier(
                settings.keys_dir,
                settings.token_audience,
                development=dev,
                max_lifetime_seconds=settings.token_max_lifetime_seconds,
            )
            cipher = FieldCipher(open_keyring(settings), sessions, settings.values_per_data_key)
            audit.bind(sessions, cipher.keyring)
            runtime = Runtime(
                sessions,
                VersionCache.bounded(),
                cipher,
                clock,
                settings.key_wait_ms,
                timedelta(days=settings.reuse_window_days),
                service_date_tolerance_days=settings.service_date_tolerance_days,
            )
            if settings.development and settings.demo_data:
                await load_demo_if_empty(engine, runtime)
            state["context"] = Context(settings=settings, runtime=runtime, principal=SYSTEM)
            state["limits"] = Limits.of(settings, clock)
            refusals = state["refusals"] = app.state.refusals = RefusalTally(sessions, clock, settings.rate_tracked_max)
            # production names its witness, or refuses to start; no sealer, no witness (SETTLE_AUDIT_SEAL_SECONDS=0)
            sealer = sealer_of(runtime, settings) if settings.audit_seal_seconds > 0 else None
            sealing = (
                asyncio.create_task(seal_forever(sealer, runtime, settings.audit_seal_seconds)) if sealer else None
            )
            gc.collect()
            gc.freeze()  # what start-up built lives as long as the process: no collection need walk it again
            if readiness is not None:
                readiness.started()
            flusher = asyncio.create_task(refusals.flush_forever(REFUSALS_FLUSH_SECONDS))
            # with several workers, each keeps its pool's figures fresh for whichever is scraped
            pool_sampler = asyncio.create_task(metrics.sample_pool_forever(engine)) if metrics.multiprocess else None
            try:
                yield
            finally:
                if pool_sampler is not None:
                    await stopped(pool_sampler)
                await stopped(flusher)
                try:  # the open minute's refusals, then one last seal: nothing is left for a next start
                    await refusals.flush(everything=True)
                except Exception as error:  # shutting down: say what was lost, and go on
                    log.error("writing refused requests to the audit log at shutdown failed", **describe(error))
                if sealing is not None and sealer is not None:
                    await stopped(sealing)
                    await seal_once(sealer, runtime)
        state.clear()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problem = readiness.problem() if readiness is not None else None
        if problem is not None:
            return JSONResponse({"status": "starting or stopping", "reason": problem}, status_code=503)
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

    scrape = Scrape(metrics, state, settings.metrics_pools_max)
    return Starlette(
        routes=[
            # every method reaches the endpoint, which answers the ones it does not take with a typed 405
            Route("/graphql", Authenticated(graphql, state, ide=ide)),
            *(ide.routes() if ide is not None else ()),
            *(
                Route(f"/exports/{name}.csv", Authenticated(Export(handler, state), state), methods=["GET"])
                for name, handler in (
                    ("anomalies", exports.anomalies),
                    ("anomaly-steps", exports.anomaly_steps),
                    ("trace-code", exports.trace_code),
                    ("risk", exports.risk),
                )
            ),
            Route(
                "/audit/checkpoints", Authenticated(Export(exports.audit_checkpoints, state), state), methods=["GET"]
            ),
            Route("/settlements/{id}/slip.pdf", Authenticated(Export(slips.slip_pdf, state), state), methods=["GET"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            # the scraper's own token, never rate limited; otherwise an administrator's, through the API's gate
            Route(
                "/metrics",
                ScraperGate(scrape, settings.metrics_token, Authenticated(AdministratorsOnly(scrape, state), state)),
                methods=["GET"],
            ),
        ],
        middleware=[
            Middleware(RequestLog, observe=metrics.observe),
            # a browser client on another origin (a hospital information system's page) only where
            # configured; a preflight is answered here, before any token is asked for
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id", "retry-after"],
                max_age=600,
            ),
            # large answers (settlement pages, exports, the schema) compressed; BREACH needs a
            # secret the browser sends on its own (a cookie), and every call here carries its token
            Middleware(GZipMiddleware, minimum_size=settings.gzip_min_bytes),
        ],
        lifespan=lifespan,
    )


def create_app_from_environment() -> Starlette:
    """The factory `settle serve` hands uvicorn (each worker process builds its own app, and
    routes its logs through api/logs.py). A setting whose value is not accepted stops the process
    with one line per setting on stderr and status 2, as `settle` does: no traceback.
    """
    try:
        settings = Settings.from_environment()
    except InvalidSetting as error:
        for line in str(error).splitlines():
            print(f"settle: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    install(settings)
    for notice in settings.notices:
        log.warning(notice)
    return create_app(settings)
