"""The service under test: the real Starlette app over a real database, driven through HTTP."""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from api.app import create_app, utc_now
from api.db.ledger import check_invariants
from api.db.session import create_engine, create_sessionmaker
from api.settings import Mode, Settings
from tests.api.documents import REFERENCE_DATA
from tests.api.tokens import Tokens
from tests.conftest import BACKENDS, Databases


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (its lifespan run) and an HTTP client talking to it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://settle.test") as client,
    ):
        yield client


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """The app served by uvicorn on real sockets, on a port the system picks; yields its base URL.
    It runs in the test's event loop, so the test must await (not block) while it calls it.
    """
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    serve = asyncio.create_task(server.serve())
    while not server.started:
        if serve.done():
            serve.result()  # it stopped before serving: raise why
        await asyncio.sleep(0.01)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serve


KEY_WAIT_MS = 300
"""How long the tests' service lets a copy wait for an in-flight request (short, to test IN_PROGRESS)."""


class Service:
    """A client of the service acting as one caller: GraphQL over HTTP with its bearer token,
    plus a look at the database's invariants. `as_(token)` is the same service, another caller.
    """

    def __init__(self, client: httpx.AsyncClient, database_url: str, tokens: Tokens, token: str) -> None:
        self.client = client
        self.database_url = database_url
        self.tokens = tokens
        self.token = token

    def as_(self, token: str) -> Service:
        return Service(self.client, self.database_url, self.tokens, token)

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"authorization": f"Bearer {self.token}"},
        )

    async def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def load(self, document: dict[str, Any]) -> dict[str, Any]:
        data = await self.as_(self.tokens.admin).graphql(
            "mutation($d: JSON!) { loadDocument(document: $d) { __typename "
            "... on LoadSummary { planVersions formularyVersions grants unchangedVersions } "
            "... on Error { code field message } } }",
            {"d": document},
        )
        result: dict[str, Any] = data["loadDocument"]
        return result

    async def violations(self) -> list[str]:
        engine = create_engine(self.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return [f"{v.invariant}: {v.detail}" for v in await check_invariants(session)]
        finally:
            await engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(databases: Databases, backend: str) -> str:
    return await databases.fresh(backend)


def witness_dir_for(database_url: str, tokens: Tokens) -> Path:
    """The file witness of one test database: a witness holds the checkpoints of one log only."""
    return tokens.keys_dir.parent / "witnesses" / hashlib.sha256(database_url.encode()).hexdigest()[:16]


def settings_for(database_url: str, tokens: Tokens, mode: Mode = Mode.DEVELOPMENT) -> Settings:
    return Settings(
        database_url=database_url,
        mode=mode,
        demo_data=False,
        key_wait_ms=KEY_WAIT_MS,
        keys_dir=tokens.keys_dir,
        keyring_dir=tokens.keyring_dir,
        audit_seal_seconds=0,
        audit_witness_dir=str(witness_dir_for(database_url, tokens)),
    )


def clock_from(start: datetime) -> Callable[[], datetime]:
    """A clock that reads `start` now and runs on in real time from there."""
    offset = start - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


@asynccontextmanager
async def loaded_service(
    database_url: str, tokens: Tokens, clock: Callable[[], datetime] = utc_now, settings: Settings | None = None
) -> AsyncIterator[Service]:
    """The app with the tests' reference data loaded, called by the level-3 hospital's cashier;
    afterwards, every money invariant holds.
    """
    async with running(create_app(settings or settings_for(database_url, tokens), clock=clock)) as client:
        subject = Service(client, database_url, tokens, tokens.hospital)
        loaded = await subject.load(copy.deepcopy(REFERENCE_DATA))
        assert loaded["__typename"] == "LoadSummary", loaded
        yield subject
    assert await subject.violations() == []


@pytest.fixture
async def service(database_url: str, tokens: Tokens) -> AsyncIterator[Service]:
    """The service on the real clock."""
    async with loaded_service(database_url, tokens) as subject:
        yield subject


@pytest.fixture(scope="session")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    return Tokens.create(tmp_path_factory.mktemp("keys"))
