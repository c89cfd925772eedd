"""The audit log's hash chain: sealing committed entries, signed checkpoints, verification.

Entries are appended inside the transactions that make them (nothing waits for the chain). A
sealer, running in the service every second (and on `settle audit seal`), takes the committed
entries not yet sealed, in order of time, and appends one seal each to `audit_seals`: its
sequence number, the previous seal's hash, and the hash of (previous hash, sequence, the entry's
canonical content). Every CHECKPOINT_EVERY seals, or CHECKPOINT_MINUTES, it signs the head of
the chain (Ed25519, key in the keyring) into `audit_checkpoints`. On PostgreSQL all three tables
are append-only.

Verification recomputes the chain and reports the first entry that was altered, removed,
inserted or reordered; checkpoints make even a chain recomputed after tampering fail.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.crypto.keyring import MasterKeyProvider
from api.db import models
from api.db.statements import advisory_key, lock_key
from api.ids import uuid7

GENESIS = "0" * 64
BATCH = 1_000
CHECKPOINT_EVERY = 1_000
CHECKPOINT_MINUTES = 10
UNSEALED_GRACE = timedelta(seconds=60)
"""How long an entry may stay unsealed before verification counts it as inserted behind the
sealer's back (the sealer runs every second; a transaction may commit late)."""


def canonical(entry: dict[str, Any]) -> bytes:
    """The entry's content as hashed: every column, in a fixed form."""
    content = {
        "id": str(entry["id"]),
        "occurred_at": entry["occurred_at"].isoformat(),
        "token_id": entry["token_id"],
        "subject": entry["subject"],
        "role": entry["role"],
        "org": entry["org"],
        "action": entry["action"],
        "target": entry["target"],
        "outcome": entry["outcome"],
        "detail": entry["detail"],
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def link(previous_hash: str, sequence: int, entry: dict[str, Any]) -> str:
    return hashlib.sha256(f"{previous_hash}|{sequence}|".encode() + canonical(entry)).hexdigest()


def checkpoint_message(sequence: int, entry_hash: str) -> bytes:
    return f"settle-audit-checkpoint|{sequence}|{entry_hash}".encode()


async def seal(sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, now: datetime) -> int:
    """Seal the committed entries not yet in the chain; returns how many were sealed."""
    log = models.AuditEntry.__table__
    seals = models.AuditSeal.__table__
    checkpoints = models.AuditCheckpoint.__table__
    sealed_total = 0
    while True:
        async with sessions() as session:
            await lock_key(session, advisory_key("audit-chain"), 60_000)  # one sealer at a time
            head = (
                await session.execute(
                    select(seals.c.sequence, seals.c.entry_hash).order_by(seals.c.sequence.desc()).limit(1)
                )
            ).first()
            sequence, previous = (head.sequence, head.entry_hash) if head is not None else (0, GENESIS)
            pending = (
                (
                    await session.execute(
                        select(log)
                        .where(~exists().where(seals.c.entry_id == log.c.id))
                        .order_by(log.c.occurred_at, log.c.id)
                        .limit(BATCH)
                    )
                )
                .mappings()
                .all()
            )
            if not pending:
                return sealed_total
            rows = []
            for entry in pending:
                sequence += 1
                entry_hash = link(previous, sequence, dict(entry))
                rows.append(
                    {
                        "sequence": sequence,
                        "entry_id": entry["id"],
                        "previous_hash": previous,
                        "entry_hash": entry_hash,
                        "sealed_at": now,
                    }
                )
                previous = entry_hash
            await session.execute(seals.insert(), rows)
            last_checkpoint = (
                await session.execute(
                    select(checkpoints.c.sequence, checkpoints.c.signed_at)
                    .order_by(checkpoints.c.sequence.desc())
                    .limit(1)
                )
            ).first()
            due = last_checkpoint is None or sequence - last_checkpoint.sequence >= CHECKPOINT_EVERY
            due = due or now - last_checkpoint.signed_at >= timedelta(minutes=CHECKPOINT_MINUTES)
            if due:
                key_id, signature = keyring.sign(checkpoint_message(sequence, previous))
                await session.execute(
                    checkpoints.insert().values(
                        id=uuid7(),
                        sequence=sequence,
                        entry_hash=previous,
                        key_id=key_id,
                        signature=signature,
                        signed_at=now,
                    )
                )
            await session.commit()
            sealed_total += len(rows)


@dataclass(frozen=True, slots=True)
class Problem:
    sequence: int | None
    entry_id: uuid.UUID | None
    problem: str


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    sealed: int
    checkpoints: int
    problems: tuple[Problem, ...]

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


async def verify(sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, now: datetime) -> Verification:
    """Recompute the chain from the first seal; every problem found, in chain order."""
    log = models.AuditEntry.__table__
    seals = models.AuditSeal.__table__
    checkpoints = models.AuditCheckpoint.__table__
    problems: list[Problem] = []
    async with sessions() as session:
        entries = {row["id"]: dict(row) for row in (await session.execute(select(log))).mappings()}
        total = len(entries)
        chain = (await session.execute(select(seals).order_by(seals.c.sequence))).mappings().all()
        signed = (await session.execute(select(checkpoints).order_by(checkpoints.c.sequence))).mappings().all()
    previous, expected_sequence = GENESIS, 0
    hashes: dict[int, str] = {}
    for seal_row in chain:
        expected_sequence += 1
        sequence, entry_id = seal_row["sequence"], seal_row["entry_id"]
        if sequence != expected_sequence:
            problems.append(Problem(expected_sequence, None, f"seal {expected_sequence} is missing: the chain was cut"))
            expected_sequence = sequence
        if seal_row["previous_hash"] != previous:
            problems.append(
                Problem(sequence, entry_id, "does not follow the seal before it: entries were reordered or removed")
            )
        entry = entries.pop(entry_id, None)
        if entry is None:
            problems.append(Problem(sequence, entry_id, "the sealed entry was removed"))
        elif link(seal_row["previous_hash"], sequence, entry) != seal_row["entry_hash"]:
            problems.append(Problem(sequence, entry_id, "the entry was altered after it was sealed"))
        previous = seal_row["entry_hash"]
        hashes[sequence] = previous
    for checkpoint in signed:
        message = checkpoint_message(checkpoint["sequence"], checkpoint["entry_hash"])
        if not keyring.verify(checkpoint["key_id"], message, checkpoint["signature"]):
            problems.append(Problem(checkpoint["sequence"], None, "a checkpoint's signature does not verify"))
        elif hashes.get(checkpoint["sequence"]) != checkpoint["entry_hash"]:
            problems.append(Problem(checkpoint["sequence"], None, "the chain differs from its signed checkpoint"))
    for entry in sorted(entries.values(), key=lambda e: (e["occurred_at"], e["id"])):
        if entry["occurred_at"] < now - UNSEALED_GRACE:
            problems.append(Problem(None, entry["id"], "an entry outside the chain: inserted behind the sealer"))
    problems.sort(key=lambda p: (p.sequence is None, p.sequence or 0))
    return Verification(total, len(chain), len(signed), tuple(problems))


async def unsealed(sessions: async_sessionmaker[AsyncSession]) -> int:
    log = models.AuditEntry.__table__
    seals = models.AuditSeal.__table__
    async with sessions() as session:
        count: int = (
            await session.execute(
                select(func.count()).select_from(log).where(~exists().where(seals.c.entry_id == log.c.id))
            )
        ).scalar_one()
        return count
