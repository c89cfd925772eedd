"""Settle claims through the real service over HTTP, against PostgreSQL, and time them.

What it measures: end-to-end `settle` mutations (GraphQL over HTTP, one transaction each: lock
the serial, read the facts, lock the person's accumulators and the prepayment pools, call the
engine, write the settlement, its lines, payers, accumulator changes and ledger entries) as a
cashier window sees them: settlements per second and the latency percentiles of each call.

How: it creates its own PostgreSQL database (settle_bench_<random>), migrates it and loads (with
`settle load`, i.e. api.services.loading.load_document) the demo data set of api/demo.py with
many more people and prepayment grants large enough that no pool runs dry; makes a token issuer
and a field-encryption keyring of its own in a temporary folder; starts `settle serve` (uvicorn,
SETTLE_MODE=production) in a subprocess on a free port; settles a warm-up batch, then N claims of
1-3 lines with C concurrent clients, each as its institution's cashier (a bearer token), under its
own serial, and checked to come back as a Settlement; checks the money invariants; and, for
comparison, runs pgbench's TPC-B on a scratch database of the same server. Besides the rate and
the latencies it reports the CPU spent per settlement by the service, PostgreSQL, the clients and
anything else (Linux only): "other" well above a millisecond means the box was not quiet. At the
end (and on errors or Ctrl-C) the server is stopped and every database it created is dropped.

    .venv/bin/python bench/settle.py [--settlements 5000] [--concurrency 32] [--warmup 200]
                                     [--people 2000] [--one-person] [--no-pgbench] [--seed 7]

The admin connection comes from TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
the service connects to its database as that same user. The default run takes about two minutes
on two cores.
Prints the figures and writes them to bench/results/settle.json (settle_one_person.json with
--one-person, where every claim is for one person and so queues on that person's rows).
Exits 1 if any settlement did not come back as a Settlement.
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
from api.db.migrate import upgrade
from api.db.session import create_engine, create_sessionmaker
from api.demo import check_digit, demo_document
from api.services.ledger import check_invariants
from api.settings import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "migrations"
RESULTS = Path(__file__).resolve().parent / "results"
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GRANT = "1000000000.00"
"""Prepayment per payer and institution, in yuan: far more than any run can draw."""
READY_TIMEOUT_S = 60.0
ISSUER = "https://idp.settle-bench.invalid"
"""The benchmark's own token issuer; the service trusts it through SETTLE_KEYS_DIR/issuers/."""
KEY_ID = "bench-1"
AUDIENCE = "settle"
COMMON_DIAGNOSES = ("C34.9", "C50.9", "C16.9", "C18.9", "C22.0", "C61", "C83.3")

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


def app_url(url: str, database: str) -> str:
    """The SQLAlchemy URL the service and the loader use for `database`."""
    return make_url(url).set(drivername="postgresql+asyncpg", database=database).render_as_string(hide_password=False)


async def admin(sql: str) -> str | None:
    """Run one statement as the admin; return the first column of its first row, if any."""
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(asyncpg_dsn(ADMIN_URL), timeout=10)
    try:
        value = await connection.fetchval(sql)
    finally:
        await connection.close()
    return None if value is None else str(value)


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
    """The settlements written and the money invariants that do not hold (api.services.ledger)."""
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
    document: dict[str, Any], count: int, people: Sequence[str], run: str, rng: random.Random
) -> list[dict[str, Any]]:
    """`count` ClaimInputs, each under its own serial, for people drawn from `people`."""
    institutions = [(item["code"], item["kind"]) for item in document["institutions"]]
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
    """The service's environment for this run: its database, production mode, the token issuers
    it trusts (scratch/keys/issuers/) and its field-encryption keyring (scratch/keyring/). The
    rate limits are off: the benchmark is one address sending as fast as the service answers.
    """
    return os.environ | {
        "DATABASE_URL": database_url,
        "SETTLE_MODE": "production",
        "SETTLE_KEYS_DIR": str(scratch / "keys"),
        "SETTLE_TOKEN_AUDIENCE": AUDIENCE,
        "SETTLE_KEYRING_DIR": str(scratch / "keyring"),
        "SETTLE_RATE_LIMITS": "0",
    }


def settle_command(arguments: Sequence[str], environment: Mapping[str, str]) -> str:
    """Run `settle ARGUMENTS` (api/cli.py) and return its output; its error output if it fails."""
    command = [sys.executable, "-m", "api.cli", *arguments]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"settle {' '.join(arguments)} exited with status {done.returncode}:\n{done.stderr}")
    return done.stdout


def load_reference_data(document: dict[str, Any], environment: Mapping[str, str], scratch: Path) -> None:
    """`settle load` (api.services.loading.load_document as the local operator). It runs in
    development mode, in which the file keyring makes the keys it lacks (the index key, each
    region's and insurer's master key) instead of refusing: that is how this run's keyring is
    provisioned before the service, in production mode, uses it.
    """
    path = scratch / "reference.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    settle_command(["load", str(path)], {**environment, "SETTLE_MODE": "development"})


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


async def drive(base_url: str, claims: Sequence[dict[str, Any]], tokens: Mapping[str, str], concurrency: int) -> Run:
    """Settle every claim, `concurrency` calls in flight at a time, each as its institution's
    cashier (`tokens` by institution code); time each call and the whole.
    """
    run = Run()
    pending = iter(claims)  # shared by the workers: next() never awaits, so no claim goes twice
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as client:

        async def worker() -> None:
            for claim in pending:
                started = time.perf_counter()
                failure = await settle(client, claim, tokens[claim["institution"]])
                run.latencies.append(time.perf_counter() - started)
                if failure is not None:
                    kind, detail = failure
                    run.failures[kind] += 1
                    run.examples.setdefault(kind, detail)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.seconds = time.perf_counter() - started
    return run


async def settle(client: httpx.AsyncClient, claim: dict[str, Any], token: str) -> tuple[str, str] | None:
    """None when the claim settled; otherwise what came back instead (a kind, and one example)."""
    body = {"query": SETTLE, "variables": {"claim": claim}}
    try:
        response = await client.post("/graphql", json=body, headers={"authorization": f"Bearer {token}"})
    except httpx.HTTPError as error:
        return type(error).__name__, str(error)
    if response.status_code != 200:
        return f"HTTP {response.status_code}", response.text[:300]
    body = response.json()
    if body.get("errors"):
        return "GraphQL error", json.dumps(body["errors"])[:300]
    result = body["data"]["settle"]
    if result["__typename"] != "Settlement":
        return f"{result['__typename']} {result.get('code')}", json.dumps(result, ensure_ascii=False)[:300]
    if result["status"] != "SETTLED" or result["serial"] != claim["serial"]:
        return "not settled", json.dumps(result, ensure_ascii=False)[:300]
    return None


def percentile(ordered: Sequence[float], rank: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    index = max(0, min(len(ordered) - 1, math.ceil(rank / 100 * len(ordered)) - 1))
    return ordered[index]


# --- CPU accounting (Linux /proc; None elsewhere) -----------------------------------------------


def ticks_to_s(stat: str) -> float:
    """User + system CPU seconds from the text of /proc/PID/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    try:
        return ticks_to_s(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def postgres_cpu_s() -> float | None:
    """CPU seconds of the PostgreSQL processes on this machine (backends, WAL writer, ...)."""
    if not Path("/proc/stat").exists():
        return None
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        if text.split(" ", 2)[1] == "(postgres)":
            total += ticks_to_s(text)
    return total


def machine_busy_s() -> float | None:
    """CPU seconds all cores spent not idle since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return None
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuSample:
    server: float | None
    postgresql: float | None
    client: float
    machine: float | None

    @classmethod
    def take(cls, server_pid: int) -> CpuSample:
        return cls(process_cpu_s(server_pid), postgres_cpu_s(), time.process_time(), machine_busy_s())


def cpu_ms_per_settlement(before: CpuSample, after: CpuSample, settlements: int) -> dict[str, float | None]:
    """Where the CPU went, per settlement: the service's process, PostgreSQL, this client, and the
    rest of the machine (the kernel's loopback networking, anything else running).
    """

    def per(start: float | None, end: float | None) -> float | None:
        return None if start is None or end is None else round((end - start) / settlements * 1000, 2)

    spent = {
        "server": per(before.server, after.server),
        "postgresql": per(before.postgresql, after.postgresql),
        "client": per(before.client, after.client),
    }
    machine = per(before.machine, after.machine)
    known = [value for value in spent.values() if value is not None]
    other = None if machine is None or len(known) < len(spent) else round(machine - sum(known), 2)
    return spent | {"other": other, "machine": machine}


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
    parser.add_argument("--settlements", type=int, default=5000, help="settlements timed (default 5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="clients in flight at once (default 32)")
    parser.add_argument("--warmup", type=int, default=200, help="settlements before timing starts (default 200)")
    parser.add_argument("--people", type=int, default=2000, help="distinct people claims are for (default 2000)")
    parser.add_argument("--one-person", action="store_true", help="every claim for one person: they serialize")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--pgbench",
        action=argparse.BooleanOptionalAction,
        default=shutil.which("pgbench") is not None,
        help="also run pgbench TPC-B for comparison (default: on when pgbench is on PATH)",
    )
    parser.add_argument("--pgbench-seconds", type=int, default=20)
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--output", type=Path, help="results JSON (default bench/results/settle.json)")
    arguments = parser.parse_args()
    if min(arguments.settlements, arguments.concurrency, arguments.people) < 1 or arguments.warmup < 0:
        parser.error("--settlements, --concurrency and --people are at least 1, --warmup at least 0")
    return arguments


def measure(arguments: argparse.Namespace, created: list[str], run_id: str) -> dict[str, Any]:
    database = f"settle_bench_{run_id}"
    create_database(database, created)
    url = app_url(ADMIN_URL, database)
    document = reference_document(arguments.people)
    people = [document["people"][0]["psn_no"]] if arguments.one_person else [p["psn_no"] for p in document["people"]]
    rng = random.Random(arguments.seed)
    warmup = make_claims(document, arguments.warmup, people, f"{run_id}-W", rng)
    claims = make_claims(document, arguments.settlements, people, run_id, rng)
    lines = sum(len(claim["lines"]) for claim in claims)

    with tempfile.TemporaryDirectory(prefix="settle_bench_") as directory:
        scratch = Path(directory)
        environment = configuration(url, scratch)
        asyncio.run(migrate(url))
        load_reference_data(document, environment, scratch)
        tokens = cashier_tokens(document, trust_new_issuer(scratch / "keys"))
        with service(environment, scratch / "server.log") as (base_url, server_pid):
            warmed = asyncio.run(drive(base_url, warmup, tokens, arguments.concurrency))
            before = CpuSample.take(server_pid)
            timed = asyncio.run(drive(base_url, claims, tokens, arguments.concurrency))
            after = CpuSample.take(server_pid)
    written, violations = asyncio.run(audit(url))

    ordered = sorted(timed.latencies)
    failures = warmed.failures + timed.failures
    return {
        "benchmark": "settle",
        "mode": "one person" if arguments.one_person else "many people",
        "settlements": arguments.settlements,
        "concurrency": arguments.concurrency,
        "warmup": arguments.warmup,
        "people": len(people),
        "lines_per_claim": round(lines / len(claims), 2),
        "settled": timed.ok,
        "failed": dict(failures),
        "failure_examples": {**warmed.examples, **timed.examples},
        "settlements_in_database": written,
        "invariant_violations": violations,
        "seconds": round(timed.seconds, 3),
        "settlements_per_second": round(timed.ok / timed.seconds, 1),
        "latency_ms": {
            "p50": round(percentile(ordered, 50) * 1000, 1),
            "p95": round(percentile(ordered, 95) * 1000, 1),
            "p99": round(percentile(ordered, 99) * 1000, 1),
            "max": round(ordered[-1] * 1000, 1),
        },
        "cpu_ms_per_settlement": cpu_ms_per_settlement(before, after, len(claims)),
    }


def compare_pgbench(arguments: argparse.Namespace, created: list[str], run_id: str) -> dict[str, Any]:
    database = f"settle_bench_{run_id}_pgbench"
    create_database(database, created)
    clients, seconds, scale = arguments.concurrency, arguments.pgbench_seconds, arguments.pgbench_scale
    tps = pgbench(database, clients, seconds, scale)
    return {
        "script": "tpcb-like",
        "scale": scale,
        "clients": clients,
        "threads": min(2, clients),
        "seconds": seconds,
        "tps": round(tps, 1),
    }


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "postgresql": asyncio.run(admin("SHOW server_version")),
    }


def report(figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        print(f"{key:>26}: {shown}")


def main() -> int:
    arguments = parse_arguments()
    run_id = uuid.uuid4().hex[:8]
    created: list[str] = []
    load_before = round(os.getloadavg()[0], 2)  # anything else running skews the figures: say so
    try:
        figures = measure(arguments, created, run_id)
        if arguments.pgbench:
            figures["pgbench"] = compare_pgbench(arguments, created, run_id)
            figures["settle_per_pgbench_tps"] = round(figures["settlements_per_second"] / figures["pgbench"]["tps"], 3)
    finally:
        drop_databases(created)
    figures["machine"] = machine() | {"load_average_before": load_before}
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report(figures)
    default = "settle_one_person.json" if arguments.one_person else "settle.json"
    output: Path = arguments.output or RESULTS / default
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    healthy = not figures["failed"] and not figures["invariant_violations"]
    return 0 if healthy and figures["settlements_in_database"] == arguments.settlements + arguments.warmup else 1


if __name__ == "__main__":
    sys.exit(main())
