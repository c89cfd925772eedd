"""Settle claims through the real service over HTTP, against PostgreSQL: rate, latency, CPU and
database round trips per settlement, beside pgbench's TPC-B measured in the same run.

What it measures: end-to-end `settle` mutations (GraphQL over HTTP, one transaction each) as cashier
windows see them. The service is `settle serve` with one worker in production mode: bearer tokens
checked, the edge's limits and cost analysis on, a JSON request log written, every audit entry
MAC'd and the sealer chaining them every second (its keyring holds the audit MAC and
checkpoint-signing keys, made by `settle keys rotate-audit`, and a file witness), rate limits raised
far above the load (not switched off: their bookkeeping stays in the path).

The workload: the demo data set (api/demo.py: its institutions, drugs, formulary and plans) with
PEOPLE generated people and prepayment that never runs dry; claims of 1-3 lines (about 1.7 on
average) with one traceability code per package, each under its own serial, as its institution's
cashier. In one run, after a warm-up: N claims with 1 client, N with 16 clients (`--clients`), and
N with 16 clients all at one institution, whose pools every settlement then queues on; then the
database round trips and statements of a settlement, counted on the wire (a proxy between a second
instance of the service and PostgreSQL, sealer off, one client). pgbench TPC-B with 16 clients runs
on a scratch database of the same server just before the settle phases and just after: their mean
is the yardstick (on a shared box, conditions drift within a run).

CPU per settlement (Linux /proc): the service's process; PostgreSQL's backends connected to the
benchmark's database (not the server's other processes, nor other databases' sessions: others may
be using the box); this script; and the rest of the machine ("other": well above a millisecond
means the box was not quiet). Peak RSS of the worker (VmHWM).

    .venv/bin/python bench/settle.py [--settlements 2000] [--clients 1,16] [--warmup 300]
        [--people 2000] [--count 200] [--no-one-institution] [--no-pgbench] [--profile FILE]
        [--note TEXT] [--no-record]

It creates its own databases (settle_bench_<random>) and drops them at the end, whatever happens.
The admin connection comes from TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres).
Prints the figures, writes them to bench/results/settle.json and appends a row to bench/results.md
(not with --no-record). `--profile FILE` samples the service with py-spy during the 16-client phase
(collapsed stacks, for flame graphs). Exits 1 if any settlement did not come back as a Settlement or
an invariant does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from api.db import models
from api.db.ledger import check_invariants
from api.db.migrate import upgrade
from api.db.session import create_engine, create_sessionmaker
from api.demo import DEMO_HOSPITAL, check_digit, demo_document
from api.settings import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "migrations"
RESULTS = Path(__file__).resolve().parent / "results"
RESULTS_MD = Path(__file__).resolve().parent / "results.md"
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GRANT = "1000000000.00"
"""Prepayment per payer and institution, in yuan: far more than any run can draw."""
READY_TIMEOUT_S = 60.0
ISSUER = "https://idp.settle-bench.invalid"
"""The benchmark's own token issuer; the service trusts it through SETTLE_KEYS_DIR/issuers/."""
KEY_ID = "bench-1"
AUDIENCE = "settle"
COMMON_DIAGNOSES = ("C34.9", "C50.9", "C16.9", "C18.9", "C22.0", "C61", "C83.3")
RATE_RAISED = "1000000"
"""Requests a second (and burst) per token and per address: far above anything this load sends."""
PGBENCH_CLIENTS = 16

SETTLE = """mutation($claim: ClaimInput!) { settle(claim: $claim) { __typename
  ... on Settlement { id serial status explanation { total patientCash
      funds { plan amount drawnFromPrepayment receivable reasons { code } }
      lines { index drug total patientCash payments { plan amount } reasons { code } } } }
  ... on Error { code field message } } }"""
"""What a cashier's window asks for: the slip (funds, lines, patient cash) or the refusal."""


# --- PostgreSQL --------------------------------------------------------------------------------


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def app_url(url: str, database: str, port: int | None = None) -> str:
    """The SQLAlchemy URL the service and the loader use for `database` (through `port`, when given)."""
    parsed = make_url(url).set(drivername="postgresql+asyncpg", database=database)
    if port is not None:
        parsed = parsed.set(host="127.0.0.1", port=port)
    return parsed.render_as_string(hide_password=False)


async def admin_fetch(sql: str, *args: Any) -> list[Any]:
    """Run one statement as the admin; return its rows."""
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(asyncpg_dsn(ADMIN_URL), timeout=10)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def admin(sql: str) -> str | None:
    """Run one statement as the admin; return the first column of its first row, if any."""
    rows = await admin_fetch(sql)
    return None if not rows or rows[0][0] is None else str(rows[0][0])


def create_database(name: str, created: list[str]) -> None:
    asyncio.run(admin(f"CREATE DATABASE {name}"))
    created.append(name)


def drop_databases(created: list[str]) -> None:
    for name in reversed(created):
        try:
            asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        except Exception as error:  # keep dropping the others; say which one is left behind
            print(f"could not drop database {name}: {error}", file=sys.stderr)


async def migrate(url: str) -> None:
    """Bring the schema to the head revision, as `settle db upgrade` does."""
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
    finally:
        await engine.dispose()


async def audit(url: str) -> tuple[int, list[str]]:
    """The settlements written and the money invariants that do not hold (api.db.ledger)."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            count = (await session.execute(select(func.count()).select_from(models.Settlement))).scalar_one()
            violations = [f"{v.invariant}: {v.detail}" for v in await check_invariants(session)]
    finally:
        await engine.dispose()
    return count, violations


# --- reference data ----------------------------------------------------------------------------


def reference_document(people: int) -> dict[str, Any]:
    """The demo data set, with `people` generated people instead of its hundred and a grant of
    GRANT from every paying payer to every institution.
    """
    document: dict[str, Any] = demo_document()
    region = document["region"]
    union = next(payer["code"] for payer in document["payers"] if payer["kind"] == "mutual_aid")
    document["people"] = [person(index, region, union) for index in range(people)]
    paying = [payer["code"] for payer in document["payers"] if payer["kind"] != "charity"]  # charity gives in kind
    institutions = [institution["code"] for institution in document["institutions"]]
    document["grants"] = [
        {"reference": f"BENCH-{payer}-{institution}", "payer": payer, "institution": institution, "amount": GRANT}
        for payer in paying
        for institution in institutions
    ]
    return document


def person(index: int, region: str, union: str) -> dict[str, Any]:
    """A mix like the demo's: one in five residents, a third of employees in the union, some
    retired, some on low income (the charity's programme), some with a pre-existing condition.
    """
    resident = index % 5 == 3
    flags = []
    if not resident and index % 4 == 1:
        flags.append("retired")
    if index % 8 == 0:
        flags.append("low_income")
    if index % 6 == 5:
        flags.append("pre_existing")
    body = f"{region}{1950 + index % 50:04d}{index % 12 + 1:02d}{index % 28 + 1:02d}{index % 1000:03d}"
    return {
        "psn_no": psn_no(index, region),
        "id_number": body + check_digit(body),
        "name": f"BENCH {index:06d}",
        "insurance_type": "resident" if resident else "employee",
        "region": region,
        "memberships": [union] if not resident and index % 3 == 0 else [],
        "flags": sorted(flags),
    }


def psn_no(index: int, region: str) -> str:
    return f"{region}8{index:09d}"


# --- claims ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """A drug as claims use it: its price at the window, where it is covered, its trace prefix."""

    drug: str
    price_fen: int
    diagnoses: tuple[str, ...]  # three-character ICD-10 codes it is restricted to; () for any
    visits: tuple[str, ...]  # visits it is restricted to; () for any
    dual_channel: bool
    trace_prefix: str
    commercial: bool

    def allowed(self, visit: str, diagnosis: str | None = None) -> bool:
        if self.visits and visit.lower() not in self.visits:
            return False
        if visit == "PHARMACY" and not self.dual_channel:
            return False
        return diagnosis is None or not self.diagnoses or diagnosis[:3] in self.diagnoses


def listings(document: dict[str, Any]) -> list[Listing]:
    """Every basic-formulary drug at its payment standard, and every commercial-catalogue drug
    that is not in the basic formulary at 1.2 times its settlement price (the list price).
    """
    prefixes = {drug["code"]: drug["trace_prefixes"][0] for drug in document["drugs"]}
    basic = [
        Listing(
            drug=entry["drug"],
            price_fen=fen(entry["payment_standard"]),
            diagnoses=tuple(entry.get("restricted_diagnoses", ())),
            visits=tuple(entry.get("restricted_visits", ())),
            dual_channel=entry.get("dual_channel", False),
            trace_prefix=prefixes[entry["drug"]],
            commercial=False,
        )
        for entry in document["formulary"]["basic"]
    ]
    in_basic = {listing.drug for listing in basic}
    commercial = {  # one listing per drug, however many insurers list it
        entry["drug"]: Listing(
            drug=entry["drug"],
            price_fen=fen(entry["settlement_price"]) * 6 // 5,
            diagnoses=(),
            visits=("inpatient",),
            dual_channel=False,
            trace_prefix=prefixes[entry["drug"]],
            commercial=True,
        )
        for entry in document["formulary"]["commercial"]
        if entry["drug"] not in in_basic
    }
    return basic + list(commercial.values())


def fen(amount: str) -> int:
    whole, _, cents = amount.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


def yuan(amount_fen: int) -> str:
    return f"{amount_fen // 100}.{amount_fen % 100:02d}"


def make_claims(
    document: dict[str, Any],
    count: int,
    people: Sequence[str],
    run: str,
    rng: random.Random,
    institution: str | None = None,
) -> list[dict[str, Any]]:
    """`count` ClaimInputs, each under its own serial, for people drawn from `people`, at the
    demo's institutions (at `institution` only, when given).
    """
    institutions = [
        (item["code"], item["kind"])
        for item in document["institutions"]
        if institution is None or item["code"] == institution
    ]
    drugs = listings(document)
    first_day = date.fromisoformat(document["effective_from"])
    return [
        make_claim(f"BENCH-{run}-{index:07d}", rng.choice(people), rng.choice(institutions), drugs, first_day, rng)
        for index in range(count)
    ]


def make_claim(
    serial: str,
    psn: str,
    institution: tuple[str, str],
    drugs: Sequence[Listing],
    first_day: date,
    rng: random.Random,
) -> dict[str, Any]:
    """One claim: a visit that fits the institution, a first drug (now and then a commercial-catalogue
    one in hospital), a diagnosis it is covered for, and up to two more drugs covered for it.
    """
    code, kind = institution
    visit = "PHARMACY" if kind == "pharmacy" else rng.choice(["OUTPATIENT", "OUTPATIENT", "INPATIENT"])
    candidates = [drug for drug in drugs if drug.allowed(visit)]
    first = rng.choices(candidates, weights=[0.2 if drug.commercial else 1.0 for drug in candidates])[0]
    diagnosis = f"{rng.choice(first.diagnoses)}.9" if first.diagnoses else rng.choice(COMMON_DIAGNOSES)
    others = [d for d in drugs if d.drug != first.drug and not d.commercial and d.allowed(visit, diagnosis)]
    extra = min(len(others), rng.choices([0, 1, 2], weights=[5, 3, 2])[0])
    chosen = [first, *rng.sample(others, extra)]
    return {
        "institution": code,
        "serial": serial,
        "person": psn,
        "serviceDate": (first_day + timedelta(days=rng.randrange(320))).isoformat(),
        "visit": visit,
        "diagnoses": [diagnosis],
        "lines": [claim_line(drug, rng) for drug in chosen],
    }


def claim_line(drug: Listing, rng: random.Random) -> dict[str, Any]:
    """1-3 units (1 for a cell therapy), priced at the standard or up to 10% above it, with one
    drug trace code (药品追溯码, 20 digits) per unit.
    """
    quantity = 1 if drug.commercial else rng.choice([1, 1, 2, 3])
    price = drug.price_fen * rng.choice([100, 100, 100, 103, 105, 110]) // 100
    codes = [drug.trace_prefix + f"{rng.randrange(10**13):013d}" for _ in range(quantity)]
    return {"drug": drug.drug, "quantity": quantity, "unitPrice": yuan(price), "traceCodes": codes}


# --- callers -----------------------------------------------------------------------------------


def trust_new_issuer(keys_dir: Path) -> Ed25519PrivateKey:
    """A fresh signing key whose public half the service is told to trust (keys_dir/issuers/)."""
    key = Ed25519PrivateKey.generate()
    public = json.loads(OKPAlgorithm.to_jwk(key.public_key())) | {"kid": KEY_ID, "alg": "EdDSA"}
    (keys_dir / "issuers").mkdir(parents=True)
    (keys_dir / "issuers" / "bench.json").write_text(json.dumps({"issuer": ISSUER, "keys": [public]}))
    return key


def cashier_tokens(document: dict[str, Any], key: Ed25519PrivateKey, ttl_s: int = 4 * 3600) -> dict[str, str]:
    """A bearer token for the cashier of each institution (role hospital or pharmacy), by code."""
    now = int(time.time())
    tokens = {}
    for institution in document["institutions"]:
        code, role = institution["code"], institution["kind"]
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"cashier-of-{code}",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "role": role,
            "org": code,
            "regions": [],
            "grants": [],
        }
        tokens[code] = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": KEY_ID})
    return tokens


# --- the service -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def configuration(database_url: str, scratch: Path) -> dict[str, str]:
    """The service's environment for this run: its database, production mode with one worker, the
    token issuers it trusts (scratch/keys/issuers/), its keyring (scratch/keyring/), its audit
    witness (scratch/witness/), JSON logs, and rate limits raised far above the load.
    """
    return os.environ | {
        "DATABASE_URL": database_url,
        "SETTLE_MODE": "production",
        "SETTLE_WORKERS": "1",
        "SETTLE_KEYS_DIR": str(scratch / "keys"),
        "SETTLE_TOKEN_AUDIENCE": AUDIENCE,
        "SETTLE_KEYRING_DIR": str(scratch / "keyring"),
        "SETTLE_AUDIT_WITNESS_DIR": str(scratch / "witness"),
        "SETTLE_LOG_FORMAT": "json",
        "SETTLE_RATE_LIMITS": "1",
        "SETTLE_RATE_TOKEN_PER_SECOND": RATE_RAISED,
        "SETTLE_RATE_TOKEN_BURST": RATE_RAISED,
        "SETTLE_RATE_SOURCE_PER_SECOND": RATE_RAISED,
        "SETTLE_RATE_SOURCE_BURST": RATE_RAISED,
    }


def settle_command(arguments: Sequence[str], environment: Mapping[str, str]) -> str:
    """Run `settle ARGUMENTS` (api/cli.py) and return its output; its error output if it fails."""
    command = [sys.executable, "-m", "api.cli", *arguments]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"settle {' '.join(arguments)} exited with status {done.returncode}:\n{done.stderr}")
    return done.stdout


def load_reference_data(document: dict[str, Any], environment: Mapping[str, str], scratch: Path) -> None:
    """`settle load` (api.services.loading.load_document as the local operator), then `settle keys
    rotate-audit`. The load runs in development mode, in which the file keyring makes the keys it
    lacks (the index key, each region's and insurer's master key) instead of refusing; the audit
    keys are made as production makes them, so that the sealer can sign its checkpoints.
    """
    path = scratch / "reference.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    settle_command(["load", str(path)], {**environment, "SETTLE_MODE": "development"})
    settle_command(["keys", "rotate-audit"], environment)


@contextmanager
def service(environment: Mapping[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """`settle serve` on a free port with `environment`; yields its base URL and process id.
    Stopped on leaving, however that happens; its log (`log`) is shown if it fails to start.
    """
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve"],
            cwd=PROJECT_ROOT,
            env={**environment, "SETTLE_HOST": "127.0.0.1", "SETTLE_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the benchmark only, which then stops the server
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, process, log)
        yield base_url, process.pid
    finally:
        stop(process)


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}:\n{tail(log)}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready after {READY_TIMEOUT_S:.0f} s:\n{tail(log)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully: the lifespan disposes the engine
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def log_problems(log: Path) -> Counter[str]:
    """Errors and warnings the service logged (the sealer's failures among them), by event."""
    found: Counter[str] = Counter()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "warning", "critical"):
            found[str(entry.get("event"))[:80]] += 1
    return found


# --- the load ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.latencies) - sum(self.failures.values())


class Window:
    """One cashier window's HTTP/1.1 connection to the service, kept alive: a request written as
    bytes, its response read by Content-Length. The load generator shares the box's two cores
    with the service and PostgreSQL, so it is kept as cheap as a client can be (an HTTP library
    spends about a millisecond of CPU per call, as much as a third of the service's own).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def drive(base_url: str, claims: Sequence[dict[str, Any]], tokens: Mapping[str, str], concurrency: int) -> Run:
    """Settle every claim, `concurrency` calls in flight at a time (one window each), each as its
    institution's cashier (`tokens` by institution code); time each call and the whole.
    """
    run = Run()
    pending = iter(claims)  # shared by the workers: next() never awaits, so no claim goes twice
    address = make_url(base_url.replace("http://", "postgresql://"))  # a URL parser at hand
    windows = [Window(address.host or "127.0.0.1", address.port or 80) for _ in range(concurrency)]

    async def worker(window: Window) -> None:
        for claim in pending:
            started = time.perf_counter()
            failure = await settle(window, claim, tokens[claim["institution"]])
            run.latencies.append(time.perf_counter() - started)
            if failure is not None:
                kind, detail = failure
                run.failures[kind] += 1
                run.examples.setdefault(kind, detail)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(window) for window in windows))
    finally:
        for window in windows:
            window.close()
    run.seconds = time.perf_counter() - started
    return run


async def settle(window: Window, claim: dict[str, Any], token: str) -> tuple[str, str] | None:
    """None when the claim settled; otherwise what came back instead (a kind, and one example)."""
    body = json.dumps({"query": SETTLE, "variables": {"claim": claim}}).encode()
    try:
        status, content = await asyncio.wait_for(window.post("/graphql", body, token), 60.0)
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
        window.close()
        window.writer = None
        return type(error).__name__, str(error)
    if status != 200:
        return f"HTTP {status}", content[:300].decode(errors="replace")
    answer = json.loads(content)
    if answer.get("errors"):
        return "GraphQL error", json.dumps(answer["errors"])[:300]
    result = answer["data"]["settle"]
    if result["__typename"] != "Settlement":
        return f"{result['__typename']} {result.get('code')}", json.dumps(result, ensure_ascii=False)[:300]
    if result["status"] != "SETTLED" or result["serial"] != claim["serial"]:
        return "not settled", json.dumps(result, ensure_ascii=False)[:300]
    return None


def percentile(ordered: Sequence[float], rank: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    index = max(0, min(len(ordered) - 1, math.ceil(rank / 100 * len(ordered)) - 1))
    return ordered[index]


# --- CPU and memory (Linux /proc; None elsewhere) ------------------------------------------------


def ticks_to_s(stat: str, *, system_only: bool = False) -> float:
    """User + system CPU seconds (system only, with `system_only`) from the text of /proc/PID/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[12]) if system_only else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int, *, system_only: bool = False) -> float | None:
    try:
        return ticks_to_s(Path(f"/proc/{pid}/stat").read_text(), system_only=system_only)
    except OSError:
        return None


def backends_cpu_s(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to `database` (the service's sessions)."""
    pids = [row[0] for row in asyncio.run(admin_fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database))]
    found = {}
    for pid in pids:
        seconds = process_cpu_s(pid)
        if seconds is not None:
            found[pid] = seconds
    return found


def machine_busy_s() -> float | None:
    """CPU seconds all cores spent not idle since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return None
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return None if found is None else round(int(found.group(1)) / 1024, 1)


@dataclass(frozen=True, slots=True)
class CpuSample:
    server: float | None
    server_system: float | None
    backends: Mapping[int, float]
    client: float
    machine: float | None

    @classmethod
    def take(cls, server_pid: int, database: str) -> CpuSample:
        return cls(
            process_cpu_s(server_pid),
            process_cpu_s(server_pid, system_only=True),
            backends_cpu_s(database),
            time.process_time(),
            machine_busy_s(),
        )


def cpu_ms_per_settlement(before: CpuSample, after: CpuSample, settlements: int) -> dict[str, float | None]:
    """Where the CPU went, per settlement: the service's process (and of it, in the kernel: the
    loopback's TCP is the sender's), its PostgreSQL backends (a backend that started during the
    phase counts whole), this client, and the rest of the machine (PostgreSQL's own background
    processes, anything else running).
    """

    def per(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds / settlements * 1000, 2)

    server = None if before.server is None or after.server is None else after.server - before.server
    kernel = (
        None
        if before.server_system is None or after.server_system is None
        else after.server_system - before.server_system
    )
    backends = sum(seconds - before.backends.get(pid, 0.0) for pid, seconds in after.backends.items())
    machine = None if before.machine is None or after.machine is None else after.machine - before.machine
    spent = {"server": per(server), "postgresql": per(backends), "client": per(after.client - before.client)}
    known = [value for value in spent.values() if value is not None]
    other = None if machine is None or len(known) < len(spent) else round(per(machine) - sum(known), 2)  # type: ignore[operator]
    return spent | {"server_in_kernel": per(kernel), "other": other, "machine": per(machine)}


# --- round trips, counted on the wire ----------------------------------------------------------


class WireCounter:
    """A TCP proxy between a service and PostgreSQL that counts the messages the service sends
    (PostgreSQL's frontend protocol): a round trip ends with each Sync (`S`, extended protocol) or
    simple Query (`Q`), after which the client waits for the server; a statement is an Execute
    (`E`) or a simple Query; a Parse (`P`) is a statement prepared anew. It counts what any
    driver sends, so the service's code before and after a change is measured alike.
    """

    SPECIAL_REQUESTS = (80877103, 80877104)  # SSLRequest, GSSENCRequest: the startup follows

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.counts: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None

    def start(self) -> int:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        ).result()
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def close(self) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

    def take(self) -> Counter[str]:
        """The counts so far, and start again from zero (read and reset on the proxy's loop)."""

        async def swap() -> Counter[str]:
            taken, self.counts = self.counts, Counter()
            return taken

        return asyncio.run_coroutine_threadsafe(swap(), self.loop).result()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(
            self._pipe(client_reader, server_writer, counting=True),
            self._pipe(server_reader, client_writer, counting=False),
            return_exceptions=True,
        )

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, counting: bool) -> None:
        buffer = bytearray()
        started = False
        try:
            while data := await source.read(65536):
                sink.write(data)
                if counting:
                    buffer.extend(data)
                    started = self._count(buffer, started)
                await sink.drain()
        finally:
            sink.close()

    def _count(self, buffer: bytearray, started: bool) -> bool:
        while True:
            if not started:
                if len(buffer) < 8:
                    return started
                length = int.from_bytes(buffer[0:4], "big")
                code = int.from_bytes(buffer[4:8], "big")
                if len(buffer) < length:
                    return started
                del buffer[:length]
                started = code not in self.SPECIAL_REQUESTS
                continue
            if len(buffer) < 5:
                return started
            length = int.from_bytes(buffer[1:5], "big")
            if len(buffer) < 1 + length:
                return started
            self.counts[chr(buffer[0])] += 1
            del buffer[: 1 + length]


def count_round_trips(
    url: str, database: str, scratch: Path, claims: Sequence[dict[str, Any]], tokens: Mapping[str, str], warmup: int
) -> dict[str, Any]:
    """Statements and round trips per settlement: a second instance of the service (sealer off,
    so that only settlements talk to the database) connected through a WireCounter, settling
    `claims` one at a time after `warmup` of them (connections opened, statements prepared).
    """
    target = make_url(url)
    counter = WireCounter(target.host or "127.0.0.1", target.port or 5432)
    port = counter.start()
    try:
        environment = configuration(app_url(ADMIN_URL, database, port), scratch) | {"SETTLE_AUDIT_SEAL_SECONDS": "0"}
        with service(environment, scratch / "counted.log") as (base_url, _):
            asyncio.run(drive(base_url, claims[:warmup], tokens, 1))
            counter.take()
            counted = asyncio.run(drive(base_url, claims[warmup:], tokens, 1))
            counts = counter.take()
    finally:
        counter.close()
    settled = counted.ok
    return {
        "settlements": settled,
        "round_trips": round((counts["S"] + counts["Q"]) / settled, 2),
        "statements": round((counts["E"] + counts["Q"]) / settled, 2),
        "prepared": round(counts["P"] / settled, 2),
        "failed": dict(counted.failures),
    }


# --- pgbench -----------------------------------------------------------------------------------


def pgbench(database: str, clients: int, seconds: int, scale: int) -> float:
    """TPC-B (pgbench's default script) tps, without initial connection time."""
    url = make_url(ADMIN_URL)
    connection = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    environment = os.environ | ({"PGPASSWORD": url.password} if url.password else {})
    initialise = ["pgbench", *connection, "-i", "-q", "-s", str(scale), database]
    subprocess.run(initialise, env=environment, check=True, capture_output=True)
    threads = min(2, clients)
    command = ["pgbench", *connection, "-c", str(clients), "-j", str(threads), "-T", str(seconds), database]
    output = subprocess.run(command, env=environment, check=True, capture_output=True, text=True).stdout
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    if found is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{output}")
    return float(found.group(1))


# --- the whole run -----------------------------------------------------------------------------


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settlements", type=int, default=2000, help="settlements timed per phase (default 2000)")
    parser.add_argument("--clients", default="1,16", help="clients in flight in each phase (default 1,16)")
    parser.add_argument("--warmup", type=int, default=300, help="settlements before timing starts (default 300)")
    parser.add_argument("--people", type=int, default=2000, help="distinct people claims are for (default 2000)")
    parser.add_argument("--count", type=int, default=200, help="settlements whose round trips are counted")
    parser.add_argument(
        "--one-institution",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also 16 clients settling at one institution ({DEMO_HOSPITAL}), on its pools (default on)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--pgbench",
        action=argparse.BooleanOptionalAction,
        default=shutil.which("pgbench") is not None,
        help="also run pgbench TPC-B for comparison (default: on when pgbench is on PATH)",
    )
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--profile", type=Path, help="py-spy's collapsed stacks of the 16-client phase, to FILE")
    parser.add_argument("--note", default="", help="what this run is, for bench/results.md")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True, help="append to results.md")
    parser.add_argument("--output", type=Path, help="results JSON (default bench/results/settle.json)")
    arguments = parser.parse_args()
    arguments.clients = [int(c) for c in arguments.clients.split(",")]
    if min(arguments.settlements, arguments.people, *arguments.clients) < 1 or arguments.warmup < 0:
        parser.error("--settlements, --clients and --people are at least 1, --warmup at least 0")
    return arguments


@contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy sampling `pid` while the body runs (raw collapsed stacks to `output`), when asked."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    process = subprocess.Popen(
        [spy, "record", "-p", str(pid), "-o", str(output), "--format", "raw", "-r", "200", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def phase(
    base_url: str,
    claims: Sequence[dict[str, Any]],
    tokens: Mapping[str, str],
    clients: int,
    server_pid: int,
    database: str,
) -> dict[str, Any]:
    before = CpuSample.take(server_pid, database)
    run = asyncio.run(drive(base_url, claims, tokens, clients))
    after = CpuSample.take(server_pid, database)
    ordered = sorted(run.latencies)
    return {
        "clients": clients,
        "settlements": len(claims),
        "settled": run.ok,
        "failed": dict(run.failures),
        "failure_examples": run.examples,
        "seconds": round(run.seconds, 3),
        "settlements_per_second": round(run.ok / run.seconds, 1),
        "latency_ms": {
            "p50": round(percentile(ordered, 50) * 1000, 1),
            "p95": round(percentile(ordered, 95) * 1000, 1),
            "p99": round(percentile(ordered, 99) * 1000, 1),
            "max": round(ordered[-1] * 1000, 1),
        },
        "cpu_ms_per_settlement": cpu_ms_per_settlement(before, after, len(claims)),
    }


def measure(arguments: argparse.Namespace, created: list[str], run_id: str) -> dict[str, Any]:
    database = f"settle_bench_{run_id}"
    create_database(database, created)
    url = app_url(ADMIN_URL, database)
    document = reference_document(arguments.people)
    people = [p["psn_no"] for p in document["people"]]
    rng = random.Random(arguments.seed)
    warmup = make_claims(document, arguments.warmup, people, f"{run_id}-W", rng)
    batches = {
        clients: make_claims(document, arguments.settlements, people, f"{run_id}-C{clients}", rng)
        for clients in arguments.clients
    }
    one_place = (
        make_claims(document, arguments.settlements, people, f"{run_id}-H", rng, DEMO_HOSPITAL)
        if arguments.one_institution
        else []
    )
    counted = make_claims(document, arguments.count + 30, people, f"{run_id}-R", rng)
    lines = [len(claim["lines"]) for batch in batches.values() for claim in batch]

    figures: dict[str, Any] = {"benchmark": "settle", "people": len(people)}
    figures["lines_per_claim"] = round(sum(lines) / len(lines), 2)
    with tempfile.TemporaryDirectory(prefix="settle_bench_") as directory:
        scratch = Path(directory)
        environment = configuration(url, scratch)
        asyncio.run(migrate(url))
        load_reference_data(document, environment, scratch)
        tokens = cashier_tokens(document, trust_new_issuer(scratch / "keys"))
        log = scratch / "server.log"
        with service(environment, log) as (base_url, server_pid):
            warmed = asyncio.run(drive(base_url, warmup, tokens, max(arguments.clients)))
            phases = []
            for clients, claims in batches.items():
                with profiled(server_pid, arguments.profile if clients == max(arguments.clients) else None):
                    phases.append(phase(base_url, claims, tokens, clients, server_pid, database))
            if one_place:
                figures["one_institution"] = phase(base_url, one_place, tokens, 16, server_pid, database) | {
                    "institution": DEMO_HOSPITAL
                }
            figures["worker_peak_rss_mb"] = peak_rss_mb(server_pid)
        figures["phases"] = phases
        figures["warmup_failed"] = dict(warmed.failures)
        figures["service_log_problems"] = dict(log_problems(log))
        figures["wire"] = count_round_trips(url, database, scratch, counted, tokens, 30)
    written, violations = asyncio.run(audit(url))
    expected = arguments.warmup + sum(len(b) for b in batches.values()) + len(one_place) + len(counted)
    figures["settlements_in_database"] = written
    figures["settlements_expected"] = expected
    figures["invariant_violations"] = violations
    return figures


def compare_pgbench(arguments: argparse.Namespace, created: list[str], run_id: str, when: str) -> float:
    """pgbench's TPC-B tps, on a scratch database made for this measure (`when`: before, after)."""
    database = f"settle_bench_{run_id}_pgbench_{when}"
    create_database(database, created)
    return pgbench(database, PGBENCH_CLIENTS, arguments.pgbench_seconds, arguments.pgbench_scale)


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "postgresql": asyncio.run(admin("SHOW server_version")),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }


def report(figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        print(f"{key:>26}: {shown}")


RESULTS_HEADER = """
## Settlement over HTTP at 1 and 16 clients: `python bench/settle.py`

One run of `bench/settle.py` per row (its docstring says what runs): `settle serve` with one worker
in production mode on PostgreSQL 15 on the 2-core box, with pgbench TPC-B (16 clients) measured in
the same run. Rates in settlements/s; latency p50/p95/p99 in ms; CPU in ms per settlement at 16
clients (service process, PostgreSQL backends of the service's database, everything else on the
machine); round trips and statements per settlement counted on the wire. Targets: ≥ 0.06 ×
pgbench at 16 clients (aim 0.10), p50 ≤ 8 ms and p99 ≤ 15 ms at one client, service CPU ≤ 5 ms,
PostgreSQL CPU ≤ 3 ms, RSS ≤ 150 MB per worker.

"""
COLUMNS = (
    "date", "commit", "at 1: /s", "p50/p95/p99", "at 16: /s", "p50/p95/p99", "× pgbench", "service CPU",
    "PG CPU", "other CPU", "round trips", "statements", "one institution /s", "RSS MB", "pgbench tps", "note",
)  # fmt: skip
RESULTS_HEADER += "| " + " | ".join(COLUMNS) + " |\n" + "| --- " * len(COLUMNS) + "|\n"


def record(figures: dict[str, Any], note: str) -> None:
    """Append the run's row to bench/results.md (the section's header first, if it is not there)."""
    by_clients = {p["clients"]: p for p in figures["phases"]}
    single, many = by_clients.get(1), by_clients.get(max(by_clients))

    def latencies(p: dict[str, Any] | None) -> str:
        return "—" if p is None else "/".join(f"{p['latency_ms'][k]:g}" for k in ("p50", "p95", "p99"))

    cpu = many["cpu_ms_per_settlement"] if many else {}
    wire = figures.get("wire", {})
    row = [
        figures["measured_at"][:10],
        figures["machine"]["commit"],
        "—" if single is None else f"{single['settlements_per_second']:g}",
        latencies(single),
        "—" if many is None else f"{many['settlements_per_second']:g}",
        latencies(many),
        f"{figures.get('settle_per_pgbench_tps', '—')}",
        f"{cpu.get('server')}",
        f"{cpu.get('postgresql')}",
        f"{cpu.get('other')}",
        f"{wire.get('round_trips', '—')}",
        f"{wire.get('statements', '—')}",
        f"{figures['one_institution']['settlements_per_second']:g}" if "one_institution" in figures else "—",
        f"{figures.get('worker_peak_rss_mb')}",
        f"{figures['pgbench']['tps']:g}" if "pgbench" in figures else "—",
        note or "—",
    ]
    text = RESULTS_MD.read_text(encoding="utf-8")
    if RESULTS_HEADER.strip() not in text:
        text = text.rstrip("\n") + "\n" + RESULTS_HEADER
    RESULTS_MD.write_text(text.rstrip("\n") + "\n| " + " | ".join(row) + " |\n", encoding="utf-8")


def main() -> int:
    arguments = parse_arguments()
    run_id = uuid.uuid4().hex[:8]
    created: list[str] = []
    load_before = round(os.getloadavg()[0], 2)  # anything else running skews the figures: say so
    try:
        # pgbench just before and just after the settle phases: on a shared box, the two sit in
        # the same conditions as the phases between them, and their mean is the yardstick
        before = compare_pgbench(arguments, created, run_id, "before") if arguments.pgbench else None
        figures = measure(arguments, created, run_id)
        if before is not None:
            after = compare_pgbench(arguments, created, run_id, "after")
            figures["pgbench"] = {
                "script": "tpcb-like",
                "scale": arguments.pgbench_scale,
                "clients": PGBENCH_CLIENTS,
                "threads": 2,
                "seconds": arguments.pgbench_seconds,
                "tps_before": round(before, 1),
                "tps_after": round(after, 1),
                "tps": round((before + after) / 2, 1),
            }
            many = max(figures["phases"], key=lambda p: p["clients"])
            figures["settle_per_pgbench_tps"] = round(many["settlements_per_second"] / figures["pgbench"]["tps"], 3)
    finally:
        drop_databases(created)
    figures["machine"] = machine() | {"load_average_before": load_before}
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report(figures)
    output: Path = arguments.output or RESULTS / "settle.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if arguments.record:
        record(figures, arguments.note)
    failed = [p for p in [*figures["phases"], figures.get("one_institution")] if p and p["failed"]]
    healthy = not failed and not figures["invariant_violations"] and not figures["wire"]["failed"]
    return 0 if healthy and figures["settlements_in_database"] == figures["settlements_expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
