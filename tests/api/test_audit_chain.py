"""The audit log is tamper-evident: entries are sealed into a hash chain with signed checkpoints,
and verification points at the first entry altered, removed, inserted or reordered directly in
the database. On PostgreSQL the ledger and the audit tables are append-only for the application.
(Forgeries with the application's own rights, deletions at the tail and witnesses, the sealer's
order, and key rotation: tests/api/test_audit_tamper.py.)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select

from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.ids import uuid7
from api.services import audit_chain
from api.settings import PROJECT_ROOT
from tests.api.auditing import Chain
from tests.api.conftest import Service
from tests.api.documents import SETTLE, claim
from tests.conftest import ADMIN_URL, _asyncpg_dsn


@pytest.fixture
async def chain(service: Service, backend: str) -> AsyncIterator[Chain]:
    subject = Chain(service, backend)
    for serial in ("A-1", "A-2", "A-3"):
        assert (await service.graphql(SETTLE, {"claim": claim(serial)}))["settle"]["__typename"] == "Settlement"
    assert await subject.seal() >= 4  # the load and three settlements
    try:
        yield subject
    finally:
        await subject.engine.dispose()


async def test_an_untouched_log_verifies_and_carries_a_signed_checkpoint(chain: Chain) -> None:
    result = await chain.verify()
    assert (result["intact"], result["firstProblem"], result["checkpoints"]) == (True, None, 1)
    assert result["sealed"] == result["entries"] >= 4
    assert await chain.seal() == 0  # nothing new to seal


Tampering = Callable[[Chain, list[dict[str, Any]]], Awaitable[None]]


async def alter(chain: Chain, entries: list[dict[str, Any]]) -> None:
    await chain.tamper("UPDATE audit_log SET action = 'nothing to see' WHERE id = :id", id=entries[2]["id"])


async def remove(chain: Chain, entries: list[dict[str, Any]]) -> None:
    await chain.tamper("DELETE FROM audit_log WHERE id = :id", id=entries[2]["id"])


async def remove_with_its_seal(chain: Chain, entries: list[dict[str, Any]]) -> None:
    await chain.tamper("DELETE FROM audit_log WHERE id = :id", id=entries[2]["id"])
    await chain.tamper("DELETE FROM audit_seals WHERE entry_id = :id", id=entries[2]["id"])


async def reorder(chain: Chain, entries: list[dict[str, Any]]) -> None:
    first, second = entries[2], entries[3]
    await chain.tamper(
        "UPDATE audit_seals SET entry_id = :placeholder WHERE entry_id = :id", placeholder=uuid7(), id=first["id"]
    )
    await chain.tamper(
        "UPDATE audit_seals SET entry_id = :other WHERE entry_id = :id", other=first["id"], id=second["id"]
    )
    await chain.tamper(
        "UPDATE audit_seals SET entry_id = :other WHERE sequence = :sequence",
        other=second["id"],
        sequence=first["sequence"],
    )


async def insert(chain: Chain, entries: list[dict[str, Any]]) -> None:
    """A backdated entry, inserted behind the service (with a genuine entry's MAC copied onto it)."""
    back_then = entries[2]["occurred_at"] - timedelta(hours=1)
    columns = "id, occurred_at, action, outcome, detail, mac_key_id, mac"
    copied = {"key": entries[2]["mac_key_id"], "mac": entries[2]["mac"]}
    if chain.backend == "sqlite":  # the service numbers entries there; so must the forger
        statement = (
            f"INSERT INTO audit_log ({columns}, position) "
            "SELECT :id, :at, 'settle', 'allowed', '{}', :key, :mac, max(position) + 1 FROM audit_log"
        )
        at = back_then.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        await chain.tamper(statement, id=uuid7(), at=at, **copied)
    else:
        values = ":id, :at, 'settle', 'allowed', '{}'::json, :key, :mac"
        statement = f"INSERT INTO audit_log ({columns}) VALUES ({values})"
        await chain.tamper(statement, id=uuid7(), at=back_then, **copied)


async def recompute(chain: Chain, entries: list[dict[str, Any]]) -> None:
    """Alter an entry and recompute every seal after it: only the signed checkpoint can tell."""
    await chain.tamper("UPDATE audit_log SET outcome = 'denied' WHERE id = :id", id=entries[1]["id"])
    previous = entries[0]
    log = models.AuditEntry.__table__
    async with chain.sessions() as session:
        rows = {row["id"]: dict(row) for row in (await session.execute(select(log))).mappings()}
    previous_hash = audit_chain.link(audit_chain.GENESIS, 1, rows[previous["id"]])
    for entry in entries[1:]:
        entry_hash = audit_chain.link(previous_hash, entry["sequence"], rows[entry["id"]])
        await chain.tamper(
            "UPDATE audit_seals SET previous_hash = :p, entry_hash = :h WHERE sequence = :s",
            p=previous_hash,
            h=entry_hash,
            s=entry["sequence"],
        )
        previous_hash = entry_hash


@pytest.mark.parametrize(
    ("tampering", "problem", "at"),
    [
        (alter, "altered", 3),
        (remove, "removed", 3),
        (remove_with_its_seal, "missing", 3),
        (reorder, "altered", 3),
        (insert, "not written by the service", None),
        (recompute, "MAC does not verify", 2),
    ],
    ids=["edit", "delete", "delete with its seal", "reorder", "insert", "recompute the chain"],
)
async def test_tampering_is_found_at_the_first_bad_entry(
    chain: Chain, tampering: Tampering, problem: str, at: int | None
) -> None:
    entries = await chain.entries()
    await tampering(chain, entries)
    if tampering is insert:
        entries_before = (await chain.verify())["entries"]
        assert entries_before == len(entries) + 1

    result = await chain.verify()

    assert result["intact"] is False
    assert problem in result["firstProblem"]
    if at is not None:
        assert result["firstProblemSequence"] == at


async def test_settle_audit_verify_exits_1_on_a_broken_chain(chain: Chain, backend: str) -> None:
    import os

    environment = {
        **os.environ,
        "DATABASE_URL": chain.service.database_url,
        "SETTLE_KEYS_DIR": str(chain.service.tokens.keys_dir),
        "SETTLE_KEYRING_DIR": str(chain.service.tokens.keyring_dir),
        "SETTLE_AUDIT_WITNESS_DIR": str(chain.witness_file.parent),
    }

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", "audit", "verify"],
            capture_output=True,
            text=True,
            env=environment,
            cwd=PROJECT_ROOT,
        )

    intact = verify()
    await alter(chain, await chain.entries())
    broken = verify()

    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert broken.returncode == 1 and "BROKEN at sequence 3" in broken.stdout


async def test_the_service_seals_new_entries_within_seconds(databases: Any, tokens: Any) -> None:

    from api.app import create_app
    from tests.api.conftest import running, settings_for

    url = await databases.fresh("sqlite")
    settings = settings_for(url, tokens).replace(audit_seal_seconds=0.2)
    async with running(create_app(settings)) as client:
        cashier = {"authorization": f"Bearer {tokens.hospital}"}
        response = await client.post("/graphql", json={"query": "{ verifyAuditLog { intact } }"}, headers=cashier)
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"  # a denied attempt: audited
        engine = create_engine(url)
        for _ in range(50):
            if await audit_chain.unsealed(create_sessionmaker(engine)) == 0:
                break
            import asyncio

            await asyncio.sleep(0.1)
        remaining = await audit_chain.unsealed(create_sessionmaker(engine))
        async with create_sessionmaker(engine)() as session:
            sealed = (await session.execute(select(models.AuditSeal.sequence))).scalars().all()
        await engine.dispose()
    assert remaining == 0 and len(sealed) >= 1


async def test_the_application_role_cannot_change_or_delete_what_is_appended(service: Service, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("roles and triggers are PostgreSQL's")
    dsn = _asyncpg_dsn(service.database_url)  # the application's own role
    app = await asyncpg.connect(dsn)
    try:
        for table, key in (
            ("ledger_entries", "id"),
            ("audit_log", "id"),
            ("trace_events", "id"),
            ("audit_seals", "sequence"),
            ("audit_checkpoints", "id"),
            ("audit_rejections", "entry_id"),
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(f"UPDATE {table} SET {key} = {key}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(f"DELETE FROM {table}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(f"TRUNCATE {table}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("DELETE FROM settlements")  # nothing is deleted anywhere
    finally:
        await app.close()
    database = service.database_url.rsplit("/", 1)[1]
    owner = await asyncpg.connect(_asyncpg_dsn(ADMIN_URL).rsplit("/", 1)[0] + "/" + database)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute("UPDATE ledger_entries SET code = code")  # the trigger stops even the owner
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute("TRUNCATE audit_log")
    finally:
        await owner.close()
