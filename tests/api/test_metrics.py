"""`/metrics` tells an operator how the service is doing, in Prometheus's format: settlements
timed by outcome, requests counted by operation and outcome, the database pool's use, the pools'
balances as the API reads them, and how far the audit sealer lags. Only the scraper's token and
administrators may read it; with several workers, whichever answers reports them all.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.http.metrics import OTHER, Exposition, ServiceMetrics, Vocabulary
from api.http.observability import Finished
from api.services import audit_chain
from api.settings import InvalidSetting, Settings
from tests.api.conftest import Service, loaded_service, settings_for
from tests.api.documents import ELSEWHERE, HOSPITAL, PHARMACY, POOLS, SETTLE, claim
from tests.api.test_serve import free_port, start, stopped, wait_ready  # noqa: F401  # stopped: a fixture
from tests.api.tokens import Tokens
from tests.conftest import Databases

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def named(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: number for (sample, labels), number in found.items() if sample == name}


async def scrape(service: Service, token: str | None = None) -> Samples:
    bearer = token or service.tokens.admin
    response = await service.client.get("/metrics", headers={"authorization": f"Bearer {bearer}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def metrics_token() -> str:
    return secrets.token_urlsafe(32)


async def test_settlements_are_timed_and_requests_counted_by_operation_and_outcome(service: Service) -> None:
    settled = (await service.graphql(SETTLE, {"claim": claim("M-1")}))["settle"]
    refused = (await service.graphql(SETTLE, {"claim": claim("M-2", person=ELSEWHERE)}))["settle"]
    assert (settled["__typename"], refused["code"]) == ("Settlement", "NOT_ELIGIBLE")

    found = await scrape(service)

    settle_ok = {"operation": "mutation settle", "outcome": "OK"}
    settle_refused = {"operation": "mutation settle", "outcome": "NOT_ELIGIBLE"}
    assert value(found, "settle_settlement_seconds_count", **settle_ok) == 1
    assert value(found, "settle_settlement_seconds_count", **settle_refused) == 1
    assert value(found, "settle_settlement_seconds_bucket", le="+Inf", **settle_ok) == 1
    assert 0 < (value(found, "settle_settlement_seconds_sum", **settle_ok) or 0) < 60
    assert value(found, "settle_requests_total", path="/graphql", **settle_ok) == 1
    assert value(found, "settle_requests_total", path="/graphql", **settle_refused) == 1
    load = {"path": "/graphql", "operation": "mutation loadDocument", "outcome": "OK"}
    assert value(found, "settle_requests_total", **load) == 1  # the fixture's reference data
    timed = {dict(labels)["operation"] for labels in named(found, "settle_settlement_seconds_count")}
    assert timed == {"mutation settle"}  # loading reference data is counted, not timed as a settlement


async def test_a_request_refused_before_it_runs_is_counted_by_its_path_and_code(service: Service) -> None:
    await service.client.post("/graphql", json={"query": "{ __typename }"})  # no token
    await service.client.get("/nowhere")

    found = await scrape(service)

    assert value(found, "settle_requests_total", path="/graphql", operation="", outcome="UNAUTHENTICATED") == 1
    assert value(found, "settle_requests_total", path="(unmatched)", operation="", outcome="NOT_FOUND") == 1


async def test_pool_balances_are_those_the_api_reads(service: Service) -> None:
    await service.graphql(SETTLE, {"claim": claim("M-3")})
    read: dict[tuple[str, str], float] = {}
    for institution in (HOSPITAL, PHARMACY):
        pools = (await service.as_(service.tokens.admin).graphql(POOLS, {"code": institution}))["institution"]
        for pool in pools["prepaymentPools"]:
            read[(pool["payer"], institution)] = float(pool["balance"])

    found = await scrape(service)

    published = {
        (dict(labels)["payer"], dict(labels)["institution"]): balance
        for labels, balance in named(found, "settle_prepayment_balance_yuan").items()
    }
    assert published == read
    assert published[("NHSA-310100", HOSPITAL)] < 100000.00  # the settlement drew on it
    for payer in {payer for payer, _ in read}:
        mine = [balance for (owner, _), balance in read.items() if owner == payer]
        assert value(found, "settle_prepayment_payer_balance_yuan", payer=payer) == pytest.approx(sum(mine))
        assert value(found, "settle_prepayment_pools", payer=payer) == len(mine)


async def test_pools_beyond_the_cap_are_left_out_lowest_balances_first_and_payer_totals_stay_whole(
    database_url: str, tokens: Tokens
) -> None:
    settings = settings_for(database_url, tokens).replace(metrics_pools_max=2)
    async with loaded_service(database_url, tokens, settings=settings) as service:
        found = await scrape(service)

    listed = named(found, "settle_prepayment_balance_yuan")
    # the reference data's grants: 100000.00, 1000.00 and 5000.00 at the hospital, 50000.00 at the pharmacy
    assert sorted(listed.values()) == [1000.00, 5000.00]
    assert value(found, "settle_prepayment_payer_balance_yuan", payer="NHSA-310100") == 150000.00
    assert value(found, "settle_prepayment_pools", payer="NHSA-310100") == 2


async def test_the_database_pool_use_is_reported(service: Service) -> None:
    found = await scrape(service)

    size = value(found, "settle_db_pool_size")
    checked_out = value(found, "settle_db_pool_checked_out")
    assert size is not None and size > 0
    assert checked_out is not None and 0 <= checked_out <= size + (value(found, "settle_db_pool_overflow") or 0)
    assert value(found, "settle_db_pool_idle") is not None
    assert value(found, "settle_metrics_database_up") == 1


async def test_the_sealer_lag_counts_unsealed_entries_until_they_are_sealed(service: Service) -> None:
    # the tests' service never seals on its own (audit_seal_seconds=0): loading the reference data left entries
    before = await scrape(service)
    engine = create_engine(service.database_url)
    try:
        keyring = FileKeyring(service.tokens.keyring_dir, Suite.AES_256_GCM, create_missing=True)
        sealed = await audit_chain.seal(create_sessionmaker(engine), keyring, datetime.now(UTC))
    finally:
        await engine.dispose()
    after = await scrape(service)

    assert value(before, "settle_audit_unsealed_entries") == sealed > 0
    assert (value(before, "settle_audit_oldest_unsealed_age_seconds") or 0) > 0
    assert value(after, "settle_audit_unsealed_entries") == 0
    assert value(after, "settle_audit_oldest_unsealed_age_seconds") == 0


async def test_only_the_scrapers_token_and_administrators_may_read_the_metrics(
    database_url: str, tokens: Tokens
) -> None:
    token = metrics_token()
    settings = settings_for(database_url, tokens).replace(metrics_token=token)
    async with loaded_service(database_url, tokens, settings=settings) as service:
        anonymous = await service.client.get("/metrics")
        guessed = await service.client.get("/metrics", headers={"authorization": f"Bearer {metrics_token()}"})
        hospital = await service.client.get("/metrics", headers={"authorization": f"Bearer {tokens.hospital}"})
        scraper = await service.client.get("/metrics", headers={"authorization": f"Bearer {token}"})
        administrator = await service.client.get("/metrics", headers={"authorization": f"Bearer {tokens.admin}"})
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                log = models.AuditEntry.__table__
                denied = (
                    await session.execute(select(log.c.role, log.c.outcome).where(log.c.action == "read metrics"))
                ).all()
        finally:
            await engine.dispose()

    assert (anonymous.status_code, guessed.status_code) == (401, 401)
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert hospital.status_code == 403 and hospital.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "settle_prepayment_balance_yuan" not in hospital.text
    assert denied == [("hospital", "denied")]
    assert scraper.status_code == 200 and "settle_prepayment_balance_yuan" in scraper.text
    assert administrator.status_code == 200


async def test_the_scraper_is_not_held_by_the_apis_rate_limits(database_url: str, tokens: Tokens) -> None:
    token = metrics_token()
    limited = {"rate_source_burst": 3, "rate_source_per_second": 0.01}  # three requests, then 429 for minutes
    settings = settings_for(database_url, tokens).replace(metrics_token=token, **limited)
    async with loaded_service(database_url, tokens, settings=settings) as service:  # spends 1 on the load
        api = [await service.post("{ __typename }") for _ in range(3)]
        scrapes = [await service.client.get("/metrics", headers={"authorization": f"Bearer {token}"}) for _ in range(5)]

    assert api[-1].status_code == 429
    assert [response.status_code for response in scrapes] == [200] * 5


def test_a_scrapers_token_too_short_to_be_secret_stops_the_service_at_start() -> None:
    with pytest.raises(InvalidSetting, match=r"SETTLE_METRICS_TOKEN .*at least 32 characters") as refused:
        Settings.from_environment({"SETTLE_METRICS_TOKEN": "prometheus"})
    assert "prometheus" not in str(refused.value)  # a secret, even a bad one, is not echoed
    assert Settings.from_environment({"SETTLE_METRICS_TOKEN": "x" * 32}).metrics_token == "x" * 32
    assert "x" * 32 not in repr(Settings(metrics_token="x" * 32))


def test_a_label_takes_only_values_of_its_form_and_at_most_so_many() -> None:
    codes = Vocabulary(re.compile(r"[A-Z_]+"), max_values=2)

    assert codes.label("OK") == "OK"
    assert codes.label("the message of an exception, 310101198001010012") == OTHER
    assert codes.label("NOT_FOUND") == "NOT_FOUND"
    assert codes.label("FORBIDDEN") == OTHER  # the third distinct value
    assert codes.label("OK") == "OK"  # known values stay
    assert codes.label(None) == ""


def test_combinations_of_root_fields_never_crowd_a_settlement_out_of_its_own_label() -> None:
    metrics = ServiceMetrics()
    metrics.operations.max_values = 2
    for operation in ("query institution,person", "query __typename,person", "query institution,settlements"):
        metrics.observe(Finished("/graphql", 200, 0.004, operation, "OK"))
    metrics.observe(Finished("/graphql", 200, 0.030, "mutation settle", "NOT_ELIGIBLE"))
    metrics.observe(Finished("/graphql", 200, 0.002, "query person", "OK"))

    found = samples(generate_latest(Exposition(metrics.collectors(None))).decode())

    counted = {dict(labels)["operation"]: n for labels, n in named(found, "settle_requests_total").items()}
    assert counted == {
        "query institution,person": 1,
        "query __typename,person": 1,
        OTHER: 1,  # the third combination: beyond the bound
        "mutation settle": 1,  # one root field: always by name
        "query person": 1,
    }
    assert value(found, "settle_settlement_seconds_count", operation="mutation settle", outcome="NOT_ELIGIBLE") == 1
    assert value(found, "settle_metrics_database_up") == 0


async def test_with_several_workers_any_of_them_reports_the_whole_services_counts(
    databases: Databases,
    tmp_path: Path,
    stopped: list[subprocess.Popen[bytes]],  # noqa: F811  # the fixture
) -> None:
    url = await databases.empty("postgresql")
    port = free_port()
    token = metrics_token()
    serve = start(url, tmp_path / "keys", port, workers=2, SETTLE_METRICS_TOKEN=token)
    stopped.append(serve)
    wait_ready(port, serve, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"

    calls = 40
    for _ in range(calls):  # a new connection each: the workers share the listening socket
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    time.sleep(1.5)  # every worker samples its database pool each second
    found = [
        samples(httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {token}"}, timeout=10).text)
        for _ in range(4)
    ]
    refused = httpx.get(f"{base}/metrics", timeout=5)

    for scraped in found:
        assert value(scraped, "settle_requests_total", path="/healthz", operation="", outcome="OK") == calls
        workers = {dict(labels)["pid"] for labels in named(scraped, "settle_db_pool_size")}
        assert len(workers) == 2
        assert value(scraped, "settle_metrics_database_up") == 1
        assert named(scraped, "settle_prepayment_balance_yuan")  # the demo data's pools, read once
    assert refused.status_code == 401
