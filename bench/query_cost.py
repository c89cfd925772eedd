"""A fragment bomb against the running service: how long its refusal takes, and whether /healthz
stays responsive meanwhile.

What it measures: the doubling-fragment query (`F0` spreads `F1` twice, ... `F40` selects a real
field: 2^40 fields once expanded, under 2 KB of text) sent over and over by several clients to
the real service, which must refuse it (QUERY_TOO_COMPLEX) from its one linear analysis of the
parsed document (api/graphql/cost.py) before validation and before any resolver. Meanwhile a
prober times GET /healthz, which shares the event loop: a refusal that took long would show in
its latency. Reported: the refusal's latency over HTTP and the analysis alone in process
(parse + measure, p50/p99), /healthz latency at rest and under the bomb (p50/p99/max), and for
comparison the validation time strawberry's QueryDepthLimiter and MaxAliasesLimiter (the limits
before this analysis) took on smaller bombs: it doubles with every level.

How: `settle serve` (uvicorn) in a subprocess on a free port, development mode on a SQLite file
in a temporary folder with the demo data set, trusting a token issuer of this run's own (see
bench/settle.py, whose helpers it uses); one hospital cashier's bearer token.

    .venv/bin/python bench/query_cost.py [--levels 40] [--seconds 20] [--clients 4]
                                         [--before-levels 12,14,16,18]

Prints the figures, writes them to bench/results/query_cost.json and appends a dated section to
bench/results.md. Exits 1 if any bomb was not refused with QUERY_TOO_COMPLEX or any /healthz failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from graphql import parse, specified_rules, validate
from settle import AUDIENCE, ISSUER, KEY_ID, percentile, service, trust_new_issuer
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

from api.graphql.cost import measure
from api.graphql.schema import build_schema

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
CASHIER_OF = "H31010100001"
"""The demo data set's level-3 hospital: its cashier sends the bomb."""
LEAF = "settlements(first: 1) { edges { node { id } } }"
PROBE_INTERVAL_S = 0.01


def doubling_fragments(levels: int) -> str:
    """`F0` spreads `F1` twice ... `F{levels}` selects LEAF: 2^levels copies of it once expanded."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    return "\n".join(["query Bomb { ...F0 }", *fragments, f"fragment F{levels} on Query {{ {LEAF} }}"])


def cashier_token(key: Ed25519PrivateKey) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"cashier-of-{CASHIER_OF}",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "role": "hospital",
        "org": CASHIER_OF,
        "regions": [],
        "grants": [],
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": KEY_ID})


def configuration(scratch: Path) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": f"sqlite+aiosqlite:///{scratch / 'bench.sqlite3'}",
        "SETTLE_MODE": "development",
        "SETTLE_DEMO_DATA": "1",
        "SETTLE_KEYS_DIR": str(scratch / "keys"),
        "SETTLE_KEYRING_DIR": str(scratch / "keyring"),
        "SETTLE_TOKEN_AUDIENCE": AUDIENCE,
        "SETTLE_AUDIT_SEAL_SECONDS": "0",
    }


# --- over HTTP ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Load:
    refusals_s: list[float] = field(default_factory=list)
    healthz_s: list[float] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)


async def probe(client: httpx.AsyncClient, load: Load, until: float) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        response = await client.get("/healthz")
        load.healthz_s.append(time.perf_counter() - started)
        if response.status_code != 200:
            load.wrong.append(f"/healthz answered {response.status_code}")
        await asyncio.sleep(PROBE_INTERVAL_S)


async def bomb(client: httpx.AsyncClient, query: str, token: str, load: Load, until: float) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        response = await client.post("/graphql", json={"query": query}, headers={"authorization": f"Bearer {token}"})
        load.refusals_s.append(time.perf_counter() - started)
        errors = response.json().get("errors") or [{}]
        code = (errors[0].get("extensions") or {}).get("code")
        if code != "QUERY_TOO_COMPLEX":
            load.wrong.append(f"HTTP {response.status_code}: {response.text[:200]}")


async def drive(base_url: str, query: str, token: str, clients: int, seconds: float) -> tuple[Load, Load]:
    """/healthz alone for a while, then /healthz while `clients` send the bomb back to back."""
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120.0) as client:
        at_rest = Load()
        await probe(client, at_rest, time.monotonic() + min(5.0, seconds / 2))
        under_bomb = Load()
        until = time.monotonic() + seconds
        await asyncio.gather(
            probe(client, under_bomb, until), *(bomb(client, query, token, under_bomb, until) for _ in range(clients))
        )
    return at_rest, under_bomb


# --- in process --------------------------------------------------------------------------------


def analysis_s(query: str, repeats: int) -> list[float]:
    """Parse and measure, as the service does for each request (its parser cache aside)."""
    schema = build_schema()._schema
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        measure(parse(query), schema)
        times.append(time.perf_counter() - started)
    return times


def former_limits_ms(levels: list[int]) -> dict[str, float]:
    """Validation with strawberry's QueryDepthLimiter(12) and MaxAliasesLimiter(30), the limits the
    service had before, on bombs of `levels` levels: each spread walked again, 2^levels walks."""
    schema = build_schema()._schema
    rules = [
        *specified_rules,
        *QueryDepthLimiter(max_depth=12).validation_rules,
        *MaxAliasesLimiter(max_alias_count=30).validation_rules,
    ]
    timings = {}
    for level in levels:
        document = parse(doubling_fragments(level))
        started = time.perf_counter()
        validate(schema, document, rules)
        timings[str(level)] = round((time.perf_counter() - started) * 1000, 1)
    return timings


# --- the whole run -----------------------------------------------------------------------------


def ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 50) * 1000, 2),
        "p99": round(percentile(ordered, 99) * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }


def record(figures: dict[str, Any]) -> None:
    """Append a dated section to bench/results.md."""
    http, alone = figures["refusal_ms_over_http"], figures["analysis_ms_in_process"]
    rest, loaded = figures["healthz_ms_at_rest"], figures["healthz_ms_under_bomb"]
    former = ", ".join(f"{level} levels {value:,.1f} ms" for level, value in figures["former_limits_ms"].items())
    setting = (
        f"The doubling-fragment query at {figures['levels']} levels ({figures['query_bytes']:,} bytes; "
        f"2^{figures['levels']} copies of `{LEAF}` once expanded) sent back to back by {figures['clients']} "
        f"clients for {figures['seconds']:g} s to `settle serve` (one uvicorn process, development mode, SQLite, "
        f"demo data), while a prober timed `GET /healthz` every {PROBE_INTERVAL_S * 1000:g} ms; load average "
        f"{figures['machine']['load_average_before']} before the run (the box's 2 cores are shared). Every one "
        f"of the {figures['refusals']:,} bombs was refused with QUERY_TOO_COMPLEX (cost {figures['cost']:,}) "
        "from the one linear analysis, before validation."
    )
    before = (
        "Before, strawberry's QueryDepthLimiter and MaxAliasesLimiter walked each spread again during "
        f"validation, twice the time for every level more: {former} (in process)."
    )
    rows = [
        ("refusal over HTTP", http),
        ("parse + analysis in process", alone),
        (f"/healthz at rest ({figures['healthz_at_rest']:,} probes)", rest),
        (f"/healthz under the bomb ({figures['healthz_under_bomb']:,} probes)", loaded),
    ]
    table = ["| | p50 ms | p99 ms | max ms |", "| --- | --- | --- | --- |"]
    table += [f"| {name} | {values['p50']} | {values['p99']} | {values['max']} |" for name, values in rows]
    section = [
        "",
        f"## Query cost: `python bench/query_cost.py` ({figures['measured_at'][:10]})",
        "",
        textwrap.fill(setting, 100),
        "",
        *table,
        "",
        textwrap.fill(before, 100),
        "",
    ]
    with (BENCH / "results.md").open("a", encoding="utf-8") as results:
        results.write("\n".join(section))


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, default=40, help="levels of doubling fragments (default 40)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the bomb is sent (default 20)")
    parser.add_argument("--clients", type=int, default=4, help="clients sending it at once (default 4)")
    parser.add_argument(
        "--before-levels", default="12,14,16,18", help="bomb sizes timed with the former limits (default 12,14,16,18)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/results.md")
    arguments = parser.parse_args()
    if arguments.levels < 1 or arguments.clients < 1 or arguments.seconds <= 0:
        parser.error("--levels and --clients are at least 1, --seconds more than 0")
    return arguments


def main() -> int:
    arguments = parse_arguments()
    query = doubling_fragments(arguments.levels)
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="settle_bench_cost_") as directory:
        scratch = Path(directory)
        token = cashier_token(trust_new_issuer(scratch / "keys"))
        with service(configuration(scratch), scratch / "server.log") as (base_url, _pid):
            at_rest, under_bomb = asyncio.run(drive(base_url, query, token, arguments.clients, arguments.seconds))
    schema = build_schema()._schema
    figures: dict[str, Any] = {
        "benchmark": "query_cost",
        "levels": arguments.levels,
        "query_bytes": len(query.encode()),
        "cost": measure(parse(query), schema).cost,
        "clients": arguments.clients,
        "seconds": arguments.seconds,
        "refusals": len(under_bomb.refusals_s),
        "not_refused": under_bomb.wrong[:5],
        "refusal_ms_over_http": ms(under_bomb.refusals_s),
        "analysis_ms_in_process": ms(analysis_s(query, 1000)),
        "healthz_at_rest": len(at_rest.healthz_s),
        "healthz_ms_at_rest": ms(at_rest.healthz_s),
        "healthz_under_bomb": len(under_bomb.healthz_s),
        "healthz_ms_under_bomb": ms(under_bomb.healthz_s),
        "former_limits_ms": former_limits_ms([int(level) for level in arguments.before_levels.split(",") if level]),
        "machine": {
            "cores": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "load_average_before": load_before,
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for key, value in figures.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        print(f"{key:>24}: {shown}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "query_cost.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if not arguments.no_record:
        record(figures)
    return 1 if under_bomb.wrong or at_rest.wrong else 0


if __name__ == "__main__":
    sys.exit(main())
