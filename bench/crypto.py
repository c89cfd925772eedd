"""Field encryption's cost: per field, and on the settlement path.

1. Encrypt and decrypt one field (an amount, and a 32-byte text) with each suite (AES-256-GCM,
   and SM4-GCM where OpenSSL has it), the data key cached as in a running service.
2. Settle claims that each carry an encrypted rebate, in process (the service layer, no HTTP),
   once with the real field cipher and once with a pass-through stand-in, and compare.
   The target: encryption costs under 10% of a settlement.

    python bench/crypto.py [--fields 50000] [--settlements 1500] [--postgres]

Prints the figures and writes them to bench/results/crypto.json. With --postgres it creates
(and drops) its own database on TEST_DATABASE_URL's server; otherwise it uses a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from adjudication import Visit
from api.auth import Principal, Role
from api.crypto import suites
from api.crypto.envelope import FieldCipher, Place
from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
from api.db.migrate import upgrade
from api.db.references import VersionCache
from api.db.session import create_engine, create_sessionmaker
from api.services import audit, settlement
from api.services.access import SYSTEM
from api.services.loading import load_document
from api.services.requests import LineInput, claim_request
from api.services.runtime import Runtime
from api.settings import PROJECT_ROOT

RESULTS = Path(__file__).resolve().parent / "results" / "crypto.json"
HOSPITAL = "H-BENCH"


class PassThrough(FieldCipher):
    """The same interface with no cryptography: the baseline of the comparison (bench only)."""

    async def encrypt(self, session: AsyncSession, place: Place, plaintext: bytes) -> bytes:
        return plaintext

    async def decrypt(self, place: Place, ciphertext: bytes, session: AsyncSession | None = None) -> bytes:
        return ciphertext


async def time_fields(suite: Suite, count: int, workdir: Path) -> dict[str, float]:
    engine = create_engine(f"sqlite+aiosqlite:///{workdir / f'fields-{suite.label}.sqlite3'}")
    await upgrade(engine, PROJECT_ROOT / "migrations")
    cipher = FieldCipher(
        FileKeyring(workdir / f"keyring-{suite.label}", suite, create_missing=True), create_sessionmaker(engine)
    )
    place = Place("commercial_entries", "settlement_price_ct", uuid.uuid4(), "insurer:INS-A")
    figures: dict[str, float] = {}
    async with cipher.sessions() as session:
        await cipher.encrypt_amount(session, place, 1)  # the data key, made once
        await session.commit()
        for kind, encrypt, decrypt, value in (
            ("amount", cipher.encrypt_amount, cipher.decrypt_amount, 9_800_000),
            ("text", cipher.encrypt_text, cipher.decrypt_text, "310101198001010012"),
        ):
            started = time.perf_counter()
            ciphertexts = [await encrypt(session, place, value) for _ in range(count)]  # type: ignore[operator]
            figures[f"encrypt_{kind}_us"] = round((time.perf_counter() - started) / count * 1e6, 2)
            started = time.perf_counter()
            for ciphertext in ciphertexts:
                await decrypt(place, ciphertext, session)  # type: ignore[operator]
            figures[f"decrypt_{kind}_us"] = round((time.perf_counter() - started) / count * 1e6, 2)
    await engine.dispose()
    return figures


def reference_document() -> dict[str, Any]:
    people = [
        {
            "psn_no": f"B{n:05d}",
            "id_number": f"3101011990{n:08d}",
            "name": f"Bench {n}",
            "insurance_type": "employee",
            "region": "310100",
        }
        for n in range(200)
    ]
    return {
        "region": "310100",
        "effective_from": "2026-01-01",
        "payers": [
            {"code": "FUND", "name": "Fund", "kind": "fund"},
            {"code": "INS-A", "name": "Insurer", "kind": "insurer"},
        ],
        "institutions": [
            {"code": HOSPITAL, "name": "Bench hospital", "kind": "hospital", "level": 3, "region": "310100"}
        ],
        "drugs": [
            {"code": "CART", "generic_name": "car-t", "package_units": 1},
            {"code": "TMAB", "generic_name": "trastuzumab", "package_units": 1},
        ],
        "people": people,
        "formulary": {
            "basic": [{"drug": "TMAB", "category": "B", "payment_standard": "1500.00"}],
            "self_pay_first_ratio": "0.10",
            "commercial": [{"drug": "CART", "insurer": "INS-A", "settlement_price": "98000.00"}],
        },
        "plans": [
            {"id": "BASIC", "payer": "FUND", "kind": "basic", "base": ["in_scope"], "ratio": {"rate": "0.80"}},
            {
                "id": "HMB",
                "payer": "INS-A",
                "kind": "commercial",
                "only_catalogue": "commercial",
                "base": ["in_scope", "self_pay_first", "above_standard", "out_of_scope"],
                "ratio": {"rate": "0.70"},
            },
        ],
        "grants": [{"reference": "G1", "payer": "INS-A", "institution": HOSPITAL, "amount": "900000000.00"}],
    }


async def time_settlements(database_url: str, count: int, cipher_class: type[FieldCipher], workdir: Path) -> float:
    """Settlements per second, sequentially, each with a CAR-T line (one encrypted rebate)."""
    engine = create_engine(database_url)
    await upgrade(engine, PROJECT_ROOT / "migrations")
    sessions = create_sessionmaker(engine)
    keyring = FileKeyring(workdir / f"keyring-{cipher_class.__name__}", Suite.AES_256_GCM, create_missing=True)
    audit.bind(sessions, keyring)  # audit entries carry their MAC, as in the service
    runtime = Runtime(sessions, VersionCache.bounded(), cipher_class(keyring, sessions), lambda: datetime.now(UTC))
    await load_document(runtime, SYSTEM, reference_document())
    cashier = Principal("bench", Role.HOSPITAL, HOSPITAL, frozenset(), frozenset(), "bench", "bench")
    requests = [
        claim_request(
            institution=HOSPITAL,
            serial=f"S-{n}",
            person=f"B{n % 200:05d}",
            service_date=datetime(2026, 5, 1).date(),
            visit=Visit.INPATIENT,
            diagnoses=["C83.3"],
            lines=[
                LineInput("CART", 1, "120000.00", [f"{3 * n:020d}"]),
                LineInput("TMAB", 2, "1500.00", [f"{3 * n + 1:020d}", f"{3 * n + 2:020d}"]),
            ],
        )
        for n in range(count)
    ]
    await settlement.settle(runtime, cashier, requests[0])  # warm the caches
    started = time.perf_counter()
    for request in requests[1:]:
        await settlement.settle(runtime, cashier, request)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return (count - 1) / elapsed


async def databases(postgres: bool, workdir: Path) -> tuple[list[str], list[str]]:
    """Two fresh databases (real cipher, pass-through); and what to drop afterwards."""
    if not postgres:
        return [f"sqlite+aiosqlite:///{workdir / name}.sqlite3" for name in ("real", "plain")], []
    import asyncpg

    admin = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    names = [f"settle_crypto_bench_{uuid.uuid4().hex[:8]}_{kind}" for kind in ("real", "plain")]
    connection = await asyncpg.connect(admin)
    for name in names:
        await connection.execute(f"CREATE DATABASE {name}")
    await connection.close()
    urls = [
        make_url(admin).set(drivername="postgresql+asyncpg", database=name).render_as_string(False) for name in names
    ]
    return urls, names


async def drop(names: list[str]) -> None:
    if not names:
        return
    import asyncpg

    connection = await asyncpg.connect(
        os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    for name in names:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await connection.close()


async def main(args: argparse.Namespace) -> None:
    figures: dict[str, Any] = {"benchmark": "crypto", "python": platform.python_version(), "fields": args.fields}
    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        for suite in (Suite.AES_256_GCM, Suite.SM4_GCM):
            if suite is Suite.SM4_GCM and not suites.sm4_gcm_available():
                figures[suite.label] = "unavailable in this OpenSSL"
                continue
            figures[suite.label] = await time_fields(suite, args.fields, workdir)
        urls, created = await databases(args.postgres, workdir)
        try:
            encrypted = await time_settlements(urls[0], args.settlements, FieldCipher, workdir)
            plain = await time_settlements(urls[1], args.settlements, PassThrough, workdir)
        finally:
            await drop(created)
    figures["settlement"] = {
        "database": "postgresql" if args.postgres else "sqlite",
        "settlements": args.settlements,
        "per_second_encrypted": round(encrypted, 1),
        "per_second_without_encryption": round(plain, 1),
        "encryption_cost_percent": round((plain / encrypted - 1) * 100, 2),
    }
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(figures, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", type=int, default=50_000)
    parser.add_argument("--settlements", type=int, default=1_500)
    parser.add_argument("--postgres", action="store_true")
    asyncio.run(main(parser.parse_args()))
