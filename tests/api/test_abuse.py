"""Abuse is counted and limited: refused tokens are one audit row per address and minute, and
callers past their rate get 429 RATE_LIMITED with Retry-After, per token and per address. The
clock is the app's own, moved by hand: minutes close and buckets refill without waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from api.app import create_app
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.settings import Settings
from tests.api.clock import Clock
from tests.api.conftest import settings_for
from tests.api.documents import HOSPITAL
from tests.api.tokens import Tokens

PROBE = {"query": "{ __typename }"}
BAD = {"authorization": "Bearer not-a-token"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def client_at(app: Starlette, address: str) -> httpx.AsyncClient:
    """A client calling from `address` (the request's source)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://settle.test")


@asynccontextmanager
async def started(app: Starlette) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


async def refusal_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            table = models.AuditEntry.__table__
            query = select(table).where(table.c.outcome == "unauthenticated").order_by(table.c.target)
            return [dict(row) for row in (await session.execute(query)).mappings()]
    finally:
        await engine.dispose()


def unlimited(database_url: str, tokens: Tokens) -> Settings:
    return settings_for(database_url, tokens).replace(rate_limits=False)


async def test_a_flood_of_bad_tokens_is_one_audit_row_with_its_count_once_the_minute_closes(
    database_url: str, tokens: Tokens
) -> None:
    clock = Clock()
    app = create_app(unlimited(database_url, tokens), clock=clock)
    async with started(app), client_at(app, "10.0.0.7") as client:
        answers = [await client.post("/graphql", json=PROBE, headers=BAD) for _ in range(300)]
        clock.advance(seconds=50)  # still the same minute
        written_early = await app.state.refusals.flush()
        rows_early = await refusal_rows(database_url)
        clock.advance(seconds=10)
        written = await app.state.refusals.flush()
        rows = await refusal_rows(database_url)

    assert {answer.status_code for answer in answers} == {401}
    assert len({answer.text for answer in answers}) == 1  # the same answer every time
    assert (written_early, rows_early) == (0, [])
    assert written == 1
    assert [(row["target"], row["detail"]["count"], row["detail"]["source"]) for row in rows] == [
        ("10.0.0.7", 300, "10.0.0.7")
    ]
    assert rows[0]["action"] == "authenticate" and rows[0]["subject"] is None


async def test_two_addresses_are_two_rows_and_what_is_pending_is_written_at_shutdown(
    database_url: str, tokens: Tokens
) -> None:
    clock = Clock()
    app = create_app(unlimited(database_url, tokens), clock=clock)
    async with started(app), client_at(app, "10.0.0.1") as first, client_at(app, "10.0.0.2") as second:
        for _ in range(3):
            await first.post("/graphql", json=PROBE, headers=BAD)
        await second.post("/graphql", json=PROBE)  # no token at all
        await second.get("/exports/anomalies.csv", headers=BAD)
        assert await refusal_rows(database_url) == []
    rows = await refusal_rows(database_url)  # the service stopped within the minute: flushed on the way out

    assert [(row["target"], row["detail"]["count"]) for row in rows] == [("10.0.0.1", 3), ("10.0.0.2", 2)]


async def test_a_token_past_its_rate_gets_429_with_retry_after_and_recovers_when_its_bucket_refills(
    database_url: str, tokens: Tokens
) -> None:
    clock = Clock()
    settings = settings_for(database_url, tokens).replace(rate_token_per_second=0.5, rate_token_burst=3)
    app = create_app(settings, clock=clock)
    cashier, colleague = tokens.hospital, tokens.mint("hospital", HOSPITAL)
    async with started(app), client_at(app, "10.0.0.3") as client:
        allowed = [(await client.post("/graphql", json=PROBE, headers=bearer(cashier))).status_code for _ in range(3)]
        limited = await client.post("/graphql", json=PROBE, headers=bearer(cashier))
        other = await client.post("/graphql", json=PROBE, headers=bearer(colleague))  # same address, own bucket
        clock.advance(seconds=2)
        recovered = await client.post("/graphql", json=PROBE, headers=bearer(cashier))
        again = await client.post("/graphql", json=PROBE, headers=bearer(cashier))

    assert allowed == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json() == {
        "errors": [
            {
                "message": "too many requests: retry after 2 seconds",
                "extensions": {"code": "RATE_LIMITED", "retryable": True, "retryAfterSeconds": 2},
            }
        ]
    }
    assert other.status_code == 200
    assert (recovered.status_code, again.status_code) == (200, 429)


async def test_an_address_past_its_rate_is_refused_before_its_tokens_are_checked_and_others_are_not(
    database_url: str, tokens: Tokens
) -> None:
    clock = Clock()
    settings = settings_for(database_url, tokens).replace(rate_source_per_second=1, rate_source_burst=4)
    app = create_app(settings, clock=clock)
    async with started(app), client_at(app, "10.0.0.4") as busy, client_at(app, "10.0.0.5") as quiet:
        callers = [tokens.mint("hospital", HOSPITAL) for _ in range(3)]
        allowed = [(await busy.post("/graphql", json=PROBE, headers=bearer(token))).status_code for token in callers]
        refused = await busy.post("/graphql", json=PROBE, headers=BAD)  # the fourth: counted, answered 401
        limited = [await busy.post("/graphql", json=PROBE, headers=headers) for headers in (BAD, bearer(callers[0]))]
        elsewhere = await quiet.post("/graphql", json=PROBE, headers=bearer(callers[0]))
        health = [(await busy.get(path)).status_code for path in ("/healthz", "/readyz") * 5]
        clock.advance(seconds=1)
        recovered = await busy.post("/graphql", json=PROBE, headers=bearer(callers[1]))
        clock.advance(minutes=1)
        await app.state.refusals.flush()
        rows = await refusal_rows(database_url)

    assert allowed == [200, 200, 200] and refused.status_code == 401
    assert [(answer.status_code, answer.headers["retry-after"]) for answer in limited] == [(429, "1"), (429, "1")]
    assert limited[0].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert elsewhere.status_code == 200
    assert set(health) == {200}  # health and readiness are never limited
    assert recovered.status_code == 200
    assert [row["detail"]["count"] for row in rows] == [1]  # the limited bad token was never looked at


async def test_with_limits_off_nothing_is_limited(database_url: str, tokens: Tokens) -> None:
    settings = unlimited(database_url, tokens).replace(rate_token_burst=1, rate_source_burst=1)
    app = create_app(settings, clock=Clock())
    async with started(app), client_at(app, "10.0.0.6") as client:
        token = tokens.hospital
        answers = {(await client.post("/graphql", json=PROBE, headers=bearer(token))).status_code for _ in range(20)}
    assert answers == {200}


def test_every_limit_is_a_setting() -> None:
    environment = {
        "SETTLE_RATE_LIMITS": "0",
        "SETTLE_RATE_TOKEN_PER_SECOND": "7.5",
        "SETTLE_RATE_TOKEN_BURST": "15",
        "SETTLE_RATE_SOURCE_PER_SECOND": "300",
        "SETTLE_RATE_SOURCE_BURST": "600",
        "SETTLE_RATE_TRACKED_MAX": "1000",
    }
    settings = Settings.from_environment(environment)
    assert (
        settings.rate_limits,
        settings.rate_token_per_second,
        settings.rate_token_burst,
        settings.rate_source_per_second,
        settings.rate_source_burst,
        settings.rate_tracked_max,
    ) == (False, 7.5, 15, 300.0, 600, 1000)
    assert Settings.from_environment({}).rate_limits is True
