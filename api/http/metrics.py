"""Prometheus metrics at `/metrics`, in the text exposition format (OpenMetrics to a scraper
that asks for it).

    settle_requests_total{path, operation, outcome}       counter: every HTTP request
    settle_settlement_seconds{operation, outcome}         histogram: settle, preSettle, reverseSettlement
    settle_db_pool_size, _checked_out, _overflow, _idle   gauges: the SQLAlchemy pool (per worker: `pid`)
    settle_prepayment_balance_yuan{payer, institution}    gauge: the lowest SETTLE_METRICS_POOLS_MAX pools
    settle_prepayment_payer_balance_yuan{payer}           gauge: all of a payer's pools together
    settle_prepayment_pools{payer}                        gauge: how many pools the payer has
    settle_audit_unsealed_entries                         gauge: audit entries not yet in the hash chain
    settle_audit_oldest_unsealed_age_seconds              gauge: how long the oldest of them has waited
    settle_metrics_database_up                            gauge: 1 when the readings above could be made

Requests are counted by the request log (api/http/observability.py) as each ends. Label values
are ours, never the caller's words: `path` is the route, `operation` the kind and the schema's
root fields, `outcome` a code; beyond a bound of distinct values per process they are counted
as `OTHER` (a bug that put free text in a code costs one series, not a million). The pools, the
audit chain and the connection pool are read when scraped.

Balances are published in yuan as floats: for dashboards and alerts only, never to compute with.

Under `settle serve --workers N` (N > 1) the workers share a folder of the run
(PROMETHEUS_MULTIPROC_DIR, made by the supervisor), so whichever worker answers a scrape reports
the whole service's counts; the database is read once per scrape, by that worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import Principal, Role
from api.graphql.context import Context
from api.http.observability import Finished, note
from api.logs import describe, get_logger
from api.serve import METRICS_VARIABLE
from api.services import audit, monitoring

log = get_logger("settle.metrics")

SETTLEMENT_OPERATIONS = frozenset({"mutation settle", "mutation preSettle", "mutation reverseSettlement"})
SETTLEMENT_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
"""A settlement takes milliseconds to a few hundred; a copy of one in flight waits up to 5 s."""
LABEL_VALUES_MAX = 200
"""Distinct values one label takes in one process before the rest are counted as OTHER."""
OTHER = "OTHER"
POOL_SAMPLE_SECONDS = 1.0
"""How often each worker of several writes its connection pool's figures for the others to report."""
SCRAPE_DATABASE_SECONDS = 5.0
"""The longest a scrape waits for the database: a slow database must not hang the scraper."""

_OUTCOME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_NAME = r"[_A-Za-z][_0-9A-Za-z]{0,99}"
_OPERATION = re.compile(rf"(query|mutation|subscription)( {_NAME}(,{_NAME}){{0,7}}(,\+[0-9]{{1,3}})?)?")
_ONE_ROOT_FIELD = re.compile(rf"(query|mutation|subscription)( {_NAME})?")
"""As many as the schema has root fields: always counted by name, however many combinations
of several fields callers have sent before."""
_PATH = re.compile(r"\(unmatched\)|/[\x21-\x7e]{0,199}")


def multiprocess_folder() -> str | None:
    """The folder the workers share, when there are several (prometheus_client reads the same
    variable when it is imported, to decide where its values live)."""
    return os.environ.get(METRICS_VARIABLE) or None


class Vocabulary:
    """The values a label may take: those of the expected form, up to a number of distinct ones
    (values of the `bounded` form, a small set by construction, are always taken).
    """

    def __init__(
        self, form: re.Pattern[str], max_values: int = LABEL_VALUES_MAX, *, bounded: re.Pattern[str] | None = None
    ) -> None:
        self.form = form
        self.max_values = max_values
        self.bounded = bounded
        self.known: set[str] = set()

    def label(self, value: str | None) -> str:
        if value is None:
            return ""
        if value in self.known or (self.bounded is not None and self.bounded.fullmatch(value)):
            return value
        if len(self.known) >= self.max_values or not self.form.fullmatch(value):
            return OTHER
        self.known.add(value)
        return value


class ServiceMetrics:
    """The metrics one process keeps, and how it reports them when scraped."""

    def __init__(self, *, multiprocess: str | None = None) -> None:
        # `_created` series double the series, and several workers have none: never
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.multiprocess = multiprocess
        self.paths = Vocabulary(_PATH)
        self.operations = Vocabulary(_OPERATION, bounded=_ONE_ROOT_FIELD)
        self.outcomes = Vocabulary(_OUTCOME)
        self.requests = Counter(
            "settle_requests",
            "HTTP requests, by route, GraphQL operation (kind and root fields) and outcome code.",
            ["path", "operation", "outcome"],
            registry=None,
        )
        self.settlement_seconds = Histogram(
            "settle_settlement_seconds",
            "Latency of settle, preSettle and reverseSettlement requests, by outcome code.",
            ["operation", "outcome"],
            buckets=SETTLEMENT_BUCKETS_SECONDS,
            registry=None,
        )
        self.pool_size = self._pool_gauge("settle_db_pool_size", "Connections the database pool keeps.")
        self.pool_checked_out = self._pool_gauge("settle_db_pool_checked_out", "Connections in use.")
        self.pool_overflow = self._pool_gauge("settle_db_pool_overflow", "Connections open beyond the pool's size.")
        self.pool_idle = self._pool_gauge("settle_db_pool_idle", "Connections open and waiting in the pool.")

    @staticmethod
    def _pool_gauge(name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, registry=None, multiprocess_mode="all")

    def observe(self, finished: Finished) -> None:
        """Count a request as it ends (the request log's observer)."""
        outcome = self.outcomes.label(finished.outcome)
        operation = self.operations.label(finished.operation)
        self.requests.labels(self.paths.label(finished.path), operation, outcome).inc()
        if finished.operation in SETTLEMENT_OPERATIONS:
            self.settlement_seconds.labels(operation, outcome).observe(finished.latency_seconds)

    def sample_pool(self, engine: AsyncEngine) -> None:
        pool = engine.sync_engine.pool
        if not isinstance(pool, QueuePool):  # a pool that keeps no connections has nothing to report
            return
        self.pool_size.set(pool.size())
        self.pool_checked_out.set(pool.checkedout())
        self.pool_overflow.set(max(0, pool.overflow()))
        self.pool_idle.set(pool.checkedin())

    async def sample_pool_forever(self, engine: AsyncEngine, every_seconds: float = POOL_SAMPLE_SECONDS) -> None:
        """With several workers: keep this worker's pool figures fresh for whichever is scraped."""
        while True:
            self.sample_pool(engine)
            await asyncio.sleep(every_seconds)

    def collectors(self, readings: monitoring.Readings | None) -> list[Collector]:
        database = DatabaseCollector(readings)
        if self.multiprocess is not None:
            files = MultiProcessCollector(None, self.multiprocess)  # type: ignore[no-untyped-call]  # untyped upstream
            return [files, database]
        pool = [self.pool_size, self.pool_checked_out, self.pool_overflow, self.pool_idle]
        return [self.requests, self.settlement_seconds, *pool, database]


class DatabaseCollector:
    """What was read from the database for this scrape (None: it could not be read)."""

    def __init__(self, readings: monitoring.Readings | None) -> None:
        self.readings = readings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "settle_metrics_database_up", "1 when this scrape could read the pools and the audit chain."
        )
        up.add_metric([], 0 if self.readings is None else 1)
        yield up
        if self.readings is None:
            return
        pools = GaugeMetricFamily(
            "settle_prepayment_balance_yuan",
            "Prepayment pool balance (yuan, for monitoring only): the pools with the lowest balances.",
            labels=["payer", "institution"],
        )
        for pool in self.readings.pools:
            pools.add_metric([pool.payer, pool.institution], pool.balance_fen / 100)
        yield pools
        payers = GaugeMetricFamily(
            "settle_prepayment_payer_balance_yuan",
            "All of a payer's prepayment pools together (yuan, for monitoring only).",
            labels=["payer"],
        )
        counts = GaugeMetricFamily("settle_prepayment_pools", "Prepayment pools of a payer.", labels=["payer"])
        for payer in self.readings.payers:
            payers.add_metric([payer.payer], payer.balance_fen / 100)
            counts.add_metric([payer.payer], payer.pools)
        yield payers
        yield counts
        unsealed = GaugeMetricFamily("settle_audit_unsealed_entries", "Audit entries not yet sealed into the chain.")
        unsealed.add_metric([], self.readings.sealer.unsealed_entries)
        yield unsealed
        age = GaugeMetricFamily(
            "settle_audit_oldest_unsealed_age_seconds", "How long the oldest unsealed audit entry has waited (0: none)."
        )
        age.add_metric([], self.readings.sealer.oldest_unsealed_age_seconds)
        yield age


class Exposition:
    """Several collectors as one, for the encoder."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self.collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


class Scrape:
    """The exposition itself: the database read once, then every metric rendered."""

    def __init__(self, metrics: ServiceMetrics, state: dict[str, Any], pools_max: int) -> None:
        self.metrics = metrics
        self.state = state
        self.pools_max = pools_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context: Context = self.state["context"]
        runtime = context.runtime
        readings: monitoring.Readings | None
        try:
            async with asyncio.timeout(SCRAPE_DATABASE_SECONDS):
                readings = await monitoring.read(runtime.sessions, runtime.clock(), self.pools_max)
        except Exception as error:  # the scrape still reports the counts, and says the database could not be read
            log.warning("reading the database for the metrics failed", **describe(error))
            readings = None
        self.metrics.sample_pool(self.state["engine"])
        encode, media_type = choose_encoder(Request(scope).headers.get("accept", ""))
        body = encode(Exposition(self.metrics.collectors(readings)))
        response = Response(body, headers={"content-type": media_type, "cache-control": "no-store"})
        await response(scope, receive, send)


class ScraperGate:
    """Who may scrape: the scraper, with the token of SETTLE_METRICS_TOKEN (compared in constant
    time; never rate limited); anyone else through `otherwise` (the API's own gate).
    """

    def __init__(self, scrape: ASGIApp, token: str | None, otherwise: ASGIApp) -> None:
        self.scrape = scrape
        self.digest = None if token is None else hashlib.sha256(token.encode()).digest()
        self.otherwise = otherwise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.digest is not None:
            scheme, _, given = Request(scope).headers.get("authorization", "").partition(" ")
            offered = hashlib.sha256(given.strip().encode()).digest()
            if scheme.lower() == "bearer" and hmac.compare_digest(offered, self.digest):
                note(role="metrics")
                await self.scrape(scope, receive, send)
                return
        await self.otherwise(scope, receive, send)


class AdministratorsOnly:
    """Behind the API's gate: an administrator may scrape (pool balances are business data);
    any other role is refused FORBIDDEN, and the refusal is written to the audit log.
    """

    def __init__(self, scrape: ASGIApp, state: dict[str, Any]) -> None:
        self.scrape = scrape
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: Principal = scope["principal"]
        if principal.role is Role.ADMIN:
            await self.scrape(scope, receive, send)
            return
        runtime = self.state["context"].runtime
        await audit.append_alone(
            runtime.sessions,
            audit.AuditRecord(
                audit.Actor.of(principal), "read metrics", "denied", runtime.clock(), detail={"code": "FORBIDDEN"}
            ),
        )
        note(outcome="FORBIDDEN")
        message = "only the metrics scraper and administrators may read the metrics"
        error = {"message": message, "extensions": {"code": "FORBIDDEN"}}
        response = JSONResponse({"errors": [error]}, status_code=403)
        await response(scope, receive, send)
