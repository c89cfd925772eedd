"""The audit sealer's cost grows with the new entries only, and verification's memory is bounded.

1. Build a PostgreSQL database whose audit log holds SMALL (10,000) genuine, sealed entries, then
   one with LARGE (1,000,000): MACs, seals and a signed checkpoint computed here, rows loaded
   with COPY.
2. On each, append the same batch (1,000 entries, through `audit.append` as the service does)
   and time one `Sealer.seal` of it; ROUNDS times, the two logs in turn, the median kept.
   Target: the large log's time within 1.5 times the small one's.
3. Run `settle audit verify` on the large log in a child process and read its peak resident
   memory (wait4's rusage). Target: under 200 MB.

    python bench/audit_seal.py [--small 10000] [--large 1000000] [--batch 1000] [--rounds 9]

Prints the figures, writes them to bench/results/audit_seal.json and appends a row to
bench/results.md. It creates (and drops) its own databases on TEST_DATABASE_URL's server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
from api.db.migrate import upgrade
from api.db.session import create_engine, create_sessionmaker
from api.services import audit, audit_chain
from api.settings import PROJECT_ROOT

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results" / "audit_seal.json"
RESULTS_MD = HERE / "results.md"
SECTION = "## The audit sealer and verification: `python bench/audit_seal.py`"
LOAD_CHUNK = 50_000


def admin_dsn() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(name: str, driver: str = "postgresql+asyncpg") -> str:
    return make_url(admin_dsn()).set(drivername=driver, database=name).render_as_string(hide_password=False)


async def admin(sql: str) -> None:
    connection = await asyncpg.connect(admin_dsn())
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def entry_rows(keyring: FileKeyring, start: int, count: int, at: datetime) -> list[dict[str, Any]]:
    """`count` genuine entries, numbered from `start`, shaped like a settlement's."""
    rows = []
    for offset in range(count):
        position = start + offset
        record = audit.AuditRecord(
            audit.Actor(f"tok-{position % 97}", f"cashier-{position % 13}", "hospital", "H31010100001"),
            "settle",
            "allowed",
            at + timedelta(microseconds=position),
            f"settlement:{uuid.UUID(int=position)}",
            {"serial": f"H31010100001-{position:08d}", "total_fen": 1234 + position % 1000},
        )
        rows.append(record.row(keyring) | {"position": position})
    return rows


async def build(name: str, entries: int, keyring: FileKeyring) -> None:
    """A migrated database holding `entries` sealed entries and a checkpoint at the head."""
    await admin(f"CREATE DATABASE {name}")
    engine = create_engine(database_url(name))
    await upgrade(engine, PROJECT_ROOT / "migrations")
    await engine.dispose()
    connection = await asyncpg.connect(make_url(database_url(name, "postgresql")).render_as_string(False))
    at = datetime.now(UTC) - timedelta(days=30)
    previous, loaded = audit_chain.GENESIS, 0
    try:
        while loaded < entries:
            count = min(LOAD_CHUNK, entries - loaded)
            rows = entry_rows(keyring, loaded + 1, count, at)
            columns = [*audit_chain.ENTRY_COLUMNS, "mac_key_id", "mac", "position"]
            records = [tuple(json.dumps(row[c]) if c == "detail" else row[c] for c in columns) for row in rows]
            async with connection.transaction():
                await connection.copy_records_to_table("audit_log", records=records, columns=columns)
                txid = await connection.fetchval("SELECT pg_current_xact_id()::text::bigint")  # the trigger's stamp
                seals = []
                for row in rows:
                    sequence = row["position"]
                    entry_hash = audit_chain.link(previous, sequence, row)
                    seals.append((sequence, row["id"], previous, entry_hash, at, txid, row["position"]))
                    previous = entry_hash
                await connection.copy_records_to_table(
                    "audit_seals",
                    records=seals,
                    columns=[
                        "sequence",
                        "entry_id",
                        "previous_hash",
                        "entry_hash",
                        "sealed_at",
                        "entry_txid",
                        "entry_position",
                    ],
                )
            loaded += count
        signed_at = datetime.now(UTC)
        key_id, signature = keyring.sign(audit_chain.checkpoint_message(entries, previous, signed_at))
        await connection.execute(
            "INSERT INTO audit_checkpoints (id, sequence, entry_hash, key_id, signature, signed_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            uuid.uuid4(),
            entries,
            previous,
            key_id,
            signature,
            signed_at,
        )
        await connection.execute("SELECT setval(pg_get_serial_sequence('audit_log', 'position'), $1)", entries)
        await connection.execute("VACUUM ANALYZE audit_log")
        await connection.execute("VACUUM ANALYZE audit_seals")
    finally:
        await connection.close()


async def quiet(sessions: Any) -> None:
    """Wait until no transaction on the cluster holds sealing back (untimed)."""
    for _ in range(600):
        async with sessions() as session:
            newest, horizon = (
                await session.execute(
                    text(
                        "SELECT (SELECT max(txid) FROM audit_log), "
                        "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
                    )
                )
            ).one()
        if newest is None or newest < horizon:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("a transaction on the cluster stayed open for 30 s")


class Log:
    """One benchmark database, open the way the service holds it."""

    def __init__(self, name: str, keyring: FileKeyring) -> None:
        self.engine = create_engine(database_url(name))
        self.sessions = create_sessionmaker(self.engine)
        audit.bind(self.sessions, keyring)
        self.sealer = audit_chain.Sealer(self.sessions, keyring, timedelta(seconds=10))

    async def seal_new(self, batch: int) -> float:
        """Append `batch` entries (100 per transaction, as many requests commit them), wait until
        nothing on the cluster holds them back, and time sealing them.
        """
        records = [
            audit.AuditRecord(
                audit.Actor("bench", "cashier", "hospital", "H31010100001"),
                "settle",
                "allowed",
                datetime.now(UTC),
                f"settlement:{uuid.uuid4()}",
                {"serial": uuid.uuid4().hex},
            )
            for _ in range(batch)
        ]
        for start in range(0, batch, 100):
            await audit.append_alone(self.sessions, *records[start : start + 100])
        await quiet(self.sessions)
        started = time.perf_counter()
        sealed = await self.sealer.seal(datetime.now(UTC))
        seconds = time.perf_counter() - started
        if sealed != batch:
            raise RuntimeError(f"sealed {sealed}, expected {batch}")
        return seconds

    async def idle_round(self) -> float:
        """A round with nothing new: what a running service does every second between requests."""
        started = time.perf_counter()
        await self.sealer.seal(datetime.now(UTC))
        return time.perf_counter() - started

    async def pending_plan(self) -> str:
        """How PostgreSQL finds the next entries to seal (the plan's access path)."""
        async with self.sessions() as session:
            rows = await session.execute(
                text(
                    "EXPLAIN SELECT * FROM audit_log WHERE (txid, position) > (0, 1) "
                    "AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
                    "ORDER BY txid, position LIMIT 1000"
                )
            )
            plan = [row[0] for row in rows]
        return next((line.strip() for line in plan if "Scan" in line), plan[0])


PEAK_REPORTER = """
import atexit, runpy, sys

def report() -> None:
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    print("peak-rss-kb", peak.split()[1], file=sys.stderr)

atexit.register(report)
sys.argv = ["settle", "audit", "verify"]
runpy.run_module("api.cli", run_name="__main__")
"""
"""`settle audit verify`, reporting its own peak resident memory (the kernel's VmHWM) on exit.
getrusage of the child would not do: on Linux a child's ru_maxrss starts from its parent's
resident size at fork, and this parent has just built a million rows."""


def verify_in_child(name: str, keyring_dir: Path, keys_dir: Path) -> tuple[float, float, str]:
    """`settle audit verify` on the database: (seconds, peak RSS in MB, its summary line)."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(name),
        "SETTLE_KEYRING_DIR": str(keyring_dir),
        "SETTLE_KEYS_DIR": str(keys_dir),
        "SETTLE_AUDIT_WITNESS_DIR": "off",
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_REPORTER], env=environment, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"verification failed: {done.stdout}{done.stderr}")
    peak_kb = int(done.stderr.split("peak-rss-kb")[1].split()[0])
    return seconds, peak_kb / 1024, done.stdout.splitlines()[0]


def append_markdown(figures: dict[str, Any]) -> None:
    row = (
        f"| {figures['date']} | {figures['batch']:,} | {figures['small']:,} | "
        f"{figures['small_seal_ms']:.1f} ({figures['small_seal_ms_min']:.1f}) | {figures['small_idle_ms']:.1f} | "
        f"{figures['large']:,} | {figures['large_seal_ms']:.1f} ({figures['large_seal_ms_min']:.1f}) | "
        f"{figures['large_idle_ms']:.1f} | {figures['ratio']:.2f} | "
        f"{figures['small_verify_s']:.1f} | {figures['large_verify_s']:.1f} | {figures['large_verify_rss_mb']:.0f} |"
    )
    text = RESULTS_MD.read_text(encoding="utf-8")
    if SECTION not in text:
        text = text.rstrip("\n") + (
            f"\n\n{SECTION}\n\n"
            "The same batch of new entries (100 per transaction, as requests commit them) sealed on a log\n"
            "of SMALL and of LARGE sealed entries, PostgreSQL 15 on the same box: the median of the rounds\n"
            "(their minimum in brackets), and a round with nothing new to seal (what a running service\n"
            "does every second). Then `settle audit verify` of each whole log in a child process: its time\n"
            "and, for the large one, its peak resident memory (the kernel's VmHWM). Targets: the large\n"
            "log's sealing within 1.5 × the small one's; verification under 200 MB.\n\n"
            "| date | batch | small log | seal ms | idle round ms | large log | seal ms | idle round ms | ratio "
            "| verify small s | verify large s | verify large peak RSS MB |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        )
    RESULTS_MD.write_text(text.rstrip("\n") + "\n" + row + "\n", encoding="utf-8")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to results.md")
    arguments = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="audit-seal-"))
    keyring = FileKeyring(workdir / "keyring", Suite.AES_256_GCM, create_missing=True)
    figures: dict[str, Any] = {"date": datetime.now(UTC).date().isoformat(), "batch": arguments.batch}
    sizes = ("small", "large")
    names = {size: f"settle_bench_audit_{run}_{size}" for size in sizes}
    try:
        for size in sizes:
            entries = getattr(arguments, size)
            started = time.perf_counter()
            await build(names[size], entries, keyring)
            figures[size] = entries
            print(f"{size}: {entries:,} sealed entries built in {time.perf_counter() - started:.0f} s", flush=True)
        await admin("CHECKPOINT")  # the bulk load's writes flushed before anything is timed
        logs = {size: Log(names[size], keyring) for size in sizes}
        timings: dict[str, list[float]] = {size: [] for size in sizes}
        idle: dict[str, list[float]] = {size: [] for size in sizes}
        try:
            for size in sizes:  # warm: connections, statement caches
                await logs[size].seal_new(arguments.batch)
            for _ in range(arguments.rounds):  # interleaved, so that the box's other load falls on both alike
                for size in sizes:
                    timings[size].append(await logs[size].seal_new(arguments.batch))
                    idle[size].append(await logs[size].idle_round())
            plan = await logs["large"].pending_plan()
        finally:
            for log in logs.values():
                await log.engine.dispose()
        print(f"the next entries to seal, on the large log: {plan}", flush=True)
        for size in sizes:
            seconds, rss_mb, summary = verify_in_child(names[size], keyring.directory, workdir / "keys")
            figures |= {
                f"{size}_seal_ms": statistics.median(timings[size]) * 1000,
                f"{size}_seal_ms_min": min(timings[size]) * 1000,
                f"{size}_seal_ms_all": [round(t * 1000, 1) for t in timings[size]],
                f"{size}_idle_ms": statistics.median(idle[size]) * 1000,
                f"{size}_verify_s": seconds,
                f"{size}_verify_rss_mb": rss_mb,
            }
            print(
                f"{size}: sealing {arguments.batch:,} new entries: median {figures[f'{size}_seal_ms']:.1f} ms "
                f"({', '.join(f'{t * 1000:.1f}' for t in timings[size])}); a round with nothing new: "
                f"{figures[f'{size}_idle_ms']:.1f} ms; verify {seconds:.1f} s, peak RSS {rss_mb:.0f} MB [{summary}]",
                flush=True,
            )
    finally:
        for name in names.values():
            await admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    figures["ratio"] = figures["large_seal_ms"] / figures["small_seal_ms"]
    figures["plan"] = plan
    figures["python"] = platform.python_version()
    print(
        f"large/small sealing time: {figures['ratio']:.2f} (target ≤ 1.5); "
        f"verification of {figures['large']:,} entries peaked at {figures['large_verify_rss_mb']:.0f} MB (target < 200)"
    )
    RESULTS_JSON.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if not arguments.no_record:
        append_markdown(figures)


if __name__ == "__main__":
    asyncio.run(main())
