"""The audit log's hash chain: sealing committed entries, signed checkpoints, verification.

Three keys of evidence, each against a different attacker (see the README):

- Each entry carries, from the moment it is written, an HMAC over its id and content under the
  keyring's audit MAC key (api/services/audit.py). Whoever holds only the database's rights
  cannot make one: the sealer refuses to chain an entry whose MAC does not verify, sets it
  aside in `audit_rejections` and raises an AUDIT_FORGERY anomaly; verification reports it.
- The sealer (every second in the service, and `settle audit seal`) appends one seal per
  genuine entry to `audit_seals`: its sequence number, the previous seal's hash, and SHA-256
  over (previous hash, sequence, the entry's canonical content). Editing, removing or reordering
  a sealed entry breaks the chain at that sequence.
- At least every `checkpoint_interval` while entries arrive (and every CHECKPOINT_EVERY seals)
  the sealer signs the chain's length and head hash with the keyring's Ed25519 key into
  `audit_checkpoints`, and hands each checkpoint to a witness outside the database (an
  append-only file; supervisors' witnesses pull them over HTTP). A chain recomputed after
  tampering, cut at its tail, emptied, or restored from an older copy no longer matches what
  the witnesses hold.

The sealer continues where it stopped: entries are taken in (txid, position) order, where
`position` numbers them at insert and `txid` is the writing transaction. Transactions commit out
of order, so on PostgreSQL it takes only entries of transactions older than the oldest one still
running (`pg_snapshot_xmin`): every such transaction has ended, so no entry can appear behind
the sealer later. On SQLite one writer at a time makes `position` the commit order. Each seal
(and each rejection) records where its entry stood; the next round starts after the last one.
Its cost grows with the new entries only.

Verification streams the chain, the checkpoints, the witnesses and the unsealed entries in
batches: its memory does not grow with the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import exists, func, insert, literal, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adjudication.tracecodes import AnomalyKind
from api.crypto.keyring import MasterKeyProvider
from api.db import anomalies as kept_anomalies
from api.db import models
from api.db.anomalies import Anomaly
from api.db.statements import advisory_key, is_postgresql, lock_key
from api.ids import uuid7
from api.services import access

log = logging.getLogger("settle.audit")

GENESIS = "0" * 64
BATCH = 1_000
CHECKPOINT_EVERY = 1_000
CHECKPOINT_INTERVAL = timedelta(seconds=10)
VERIFY_BATCH = 2_000
MAX_PROBLEMS = 1_000
"""Verification keeps the first problems in full and counts the rest."""
HELD_BACK_WARNING_SECONDS = 60.0

ENTRY_COLUMNS = ("id", "occurred_at", "token_id", "subject", "role", "org", "action", "target", "outcome", "detail")


def canonical(entry: dict[str, Any]) -> bytes:
    """The entry's content as hashed and MACed: every column written by the service, in a fixed form."""
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


def entry_message(entry: dict[str, Any]) -> bytes:
    """What an entry's MAC is computed over: its id and whole content."""
    return b"settle-audit-entry|" + canonical(entry)


def link(previous_hash: str, sequence: int, entry: dict[str, Any]) -> str:
    return hashlib.sha256(f"{previous_hash}|{sequence}|".encode() + canonical(entry)).hexdigest()


def moment(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def checkpoint_message(sequence: int, entry_hash: str, signed_at: datetime) -> bytes:
    """What a checkpoint's signature covers: the chain's length, its head, and when."""
    return f"settle-audit-checkpoint/2|{sequence}|{entry_hash}|{moment(signed_at)}".encode()


def _legacy_checkpoint_message(sequence: int, entry_hash: str) -> bytes:
    """Checkpoints signed before the time was signed too (their time is not vouched for)."""
    return f"settle-audit-checkpoint|{sequence}|{entry_hash}".encode()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that the chain had `sequence` seals, ending in `entry_hash`."""

    sequence: int
    entry_hash: str
    key_id: str
    signature: bytes
    signed_at: datetime

    def verifies(self, keyring: MasterKeyProvider, *, legacy: bool = False) -> bool:
        message = checkpoint_message(self.sequence, self.entry_hash, self.signed_at)
        if keyring.verify(self.key_id, message, self.signature):
            return True
        return legacy and keyring.verify(
            self.key_id, _legacy_checkpoint_message(self.sequence, self.entry_hash), self.signature
        )


class Witness(Protocol):
    """Somewhere outside the database that keeps every checkpoint it is given."""

    async def record(self, sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider) -> None:
        """Take the database's checkpoints newer than the newest it holds."""
        ...


class CheckpointSource(Protocol):
    """A witness's copy, read back for verification, in ascending sequence."""

    @property
    def name(self) -> str: ...

    @property
    def external(self) -> bool:
        """A copy held outside the database (a checkpoint it holds must also be in the database)."""
        ...

    def checkpoints(self) -> AsyncIterator[Checkpoint | str]:
        """Each checkpoint held, or a string saying why one line could not be read."""
        ...


class WitnessUnreadable(Exception):
    """A witness could not be read at all (missing URL, network, permissions)."""


# --- sealing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Head:
    sequence: int
    entry_hash: str
    cursor: tuple[int, int]


async def _head(session: AsyncSession) -> _Head:
    """The last seal and where the sealer stands: after the last entry sealed or set aside."""
    seals = models.AuditSeal.__table__
    rejections = models.AuditRejection.__table__
    last = (
        await session.execute(
            select(seals.c.sequence, seals.c.entry_hash, seals.c.entry_txid, seals.c.entry_position)
            .order_by(seals.c.sequence.desc())
            .limit(1)
        )
    ).first()
    rejected = (
        await session.execute(
            select(rejections.c.entry_txid, rejections.c.entry_position)
            .order_by(rejections.c.entry_txid.desc(), rejections.c.entry_position.desc())
            .limit(1)
        )
    ).first()
    sealed_at = (0, 0) if last is None else (last.entry_txid, last.entry_position or 0)
    cursor = max(sealed_at, (0, 0) if rejected is None else (rejected.entry_txid, rejected.entry_position))
    if last is None:
        return _Head(0, GENESIS, cursor)
    return _Head(last.sequence, last.entry_hash, cursor)


async def _horizon(session: AsyncSession) -> int | None:
    """PostgreSQL: the oldest transaction still running anywhere; every older one has ended."""
    if not is_postgresql(session):
        return None
    value: int = (
        await session.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
    ).scalar_one()
    return value


async def _pending(
    session: AsyncSession, cursor: tuple[int, int], horizon: int | None, batch: int
) -> list[dict[str, Any]]:
    """The next entries after `cursor`, in (txid, position) order, by index: never the log before it.

    The two NOT EXISTS are index probes on this batch's rows; they keep a sealer whose cursor
    was set back (its last seal's entry removed by hand) from sealing anything twice.
    """
    entries = models.AuditEntry.__table__
    seals = models.AuditSeal.__table__
    rejections = models.AuditRejection.__table__
    statement = (
        select(entries)
        .where(
            tuple_(entries.c.txid, entries.c.position) > tuple_(literal(cursor[0]), literal(cursor[1])),
            ~exists().where(seals.c.entry_id == entries.c.id),
            ~exists().where(rejections.c.entry_id == entries.c.id),
        )
        .order_by(entries.c.txid, entries.c.position)
        .limit(batch)
    )
    if horizon is not None:
        statement = statement.where(entries.c.txid < horizon)
    return [dict(row) for row in (await session.execute(statement)).mappings()]


def mac_verifies(keyring: MasterKeyProvider, entry: dict[str, Any]) -> bool:
    if entry["mac"] is None or entry["mac_key_id"] is None:
        return False
    return keyring.verify_audit_mac(entry["mac_key_id"], entry_message(entry), entry["mac"])


def forgery_anomaly(entry: dict[str, Any], reason: str, now: datetime) -> Anomaly:
    """An AUDIT_FORGERY for the supervisors. A forged entry names no institution we can trust (its
    `org` is whatever the forger wrote), and the audit log is one for every region: it is the
    service's own (institution SYSTEM), seen by every supervisor (region ALL_REGIONS).
    """
    message = (
        f"audit entry {entry['id']} ({entry['action']!r} at {moment(entry['occurred_at'])}, claimed by "
        f"{entry['org'] or 'nobody'}) was not written by the service: {reason}; it is left out of the chain"
    )
    return Anomaly(
        AnomalyKind.AUDIT_FORGERY,
        f"{AnomalyKind.AUDIT_FORGERY}:{entry['id']}",
        access.SYSTEM.org,
        access.ALL_REGIONS,
        now,
        "scan",
        message,
        detail={"entry_id": str(entry["id"]), "reason": reason, "position": entry["position"]},
    )


def _forgery_reason(entry: dict[str, Any]) -> str:
    return "it carries no MAC" if entry["mac"] is None else "its MAC does not verify"


@dataclass(slots=True)
class Sealer:
    """Seals committed audit entries; one sealer at a time per database (an advisory lock)."""

    sessions: async_sessionmaker[AsyncSession]
    keyring: MasterKeyProvider
    checkpoint_interval: timedelta = CHECKPOINT_INTERVAL
    witness: Witness | None = None
    batch: int = BATCH
    _witnessed_once: bool = field(default=False, init=False)
    _held_back: tuple[int, float] | None = field(default=None, init=False)

    async def seal(self, now: datetime) -> int:
        """Seal what committed since the last round; returns how many entries were sealed."""
        sealed_total = 0
        checkpointed = False
        while True:
            async with self.sessions() as session:
                await lock_key(session, advisory_key("audit-chain"), 60_000)  # one sealer at a time
                head = await _head(session)
                horizon = await _horizon(session)
                pending = await _pending(session, head.cursor, horizon, self.batch)
                sequence, previous = head.sequence, head.entry_hash
                seals: list[dict[str, Any]] = []
                rejections: list[dict[str, Any]] = []
                anomalies: list[Anomaly] = []
                for entry in pending:
                    if not mac_verifies(self.keyring, entry):
                        reason = _forgery_reason(entry)
                        rejections.append(
                            {
                                "entry_id": entry["id"],
                                "entry_txid": entry["txid"],
                                "entry_position": entry["position"],
                                "reason": reason,
                                "rejected_at": now,
                            }
                        )
                        anomalies.append(forgery_anomaly(entry, reason, now))
                        continue
                    sequence += 1
                    entry_hash = link(previous, sequence, entry)
                    seals.append(
                        {
                            "sequence": sequence,
                            "entry_id": entry["id"],
                            "previous_hash": previous,
                            "entry_hash": entry_hash,
                            "sealed_at": now,
                            "entry_txid": entry["txid"],
                            "entry_position": entry["position"],
                        }
                    )
                    previous = entry_hash
                if seals:
                    await session.execute(insert(models.AuditSeal), seals)
                if rejections:
                    await session.execute(insert(models.AuditRejection), rejections)
                    await kept_anomalies.record(session, anomalies)
                    log.error("%d audit entries were not written by the service: set aside", len(rejections))
                checkpointed = await self._checkpoint_if_due(session, sequence, previous, now) or checkpointed
                await session.commit()
            sealed_total += len(seals)
            if len(pending) < self.batch:
                break
        if self.witness is not None and (checkpointed or not self._witnessed_once):
            await self.witness.record(self.sessions, self.keyring)
            self._witnessed_once = True
        if horizon is not None and not pending:
            await self._warn_if_held_back(horizon)
        return sealed_total

    async def _checkpoint_if_due(self, session: AsyncSession, sequence: int, head: str, now: datetime) -> bool:
        """Sign the head when it moved and the last checkpoint is CHECKPOINT_EVERY seals or the
        interval old, so that no more than about the interval of entries is ever unwitnessed.
        """
        checkpoints = models.AuditCheckpoint.__table__
        last = (
            await session.execute(
                select(checkpoints.c.sequence, checkpoints.c.signed_at).order_by(checkpoints.c.sequence.desc()).limit(1)
            )
        ).first()
        if sequence == 0 or (last is not None and sequence <= last.sequence):
            return False
        if (
            last is not None
            and sequence - last.sequence < CHECKPOINT_EVERY
            and now - last.signed_at < self.checkpoint_interval
        ):
            return False
        key_id, signature = self.keyring.sign(checkpoint_message(sequence, head, now))
        await session.execute(
            insert(models.AuditCheckpoint).values(
                id=uuid7(), sequence=sequence, entry_hash=head, key_id=key_id, signature=signature, signed_at=now
            )
        )
        return True

    async def _warn_if_held_back(self, horizon: int) -> None:
        """A transaction that stays open (anywhere on the PostgreSQL cluster) holds sealing back:
        say so once a minute while committed entries wait behind it.
        """
        since = time.monotonic()
        if self._held_back is None or self._held_back[0] != horizon:
            self._held_back = (horizon, since)
            return
        if since - self._held_back[1] < HELD_BACK_WARNING_SECONDS:
            return
        entries = models.AuditEntry.__table__
        async with self.sessions() as session:
            waiting = (await session.execute(select(entries.c.id).where(entries.c.txid >= horizon).limit(1))).first()
        if waiting is not None:
            log.warning(
                "audit entries wait to be sealed behind transaction %d, open for over %.0f s: "
                "find it in pg_stat_activity (backend_xid); set idle_in_transaction_session_timeout",
                horizon,
                since - self._held_back[1],
            )
            self._held_back = (horizon, since)


async def seal(sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, now: datetime) -> int:
    """Seal now, without a witness (tests, one-off calls)."""
    return await Sealer(sessions, keyring).seal(now)


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """`sequence` is the first bad one; `through`, when set, the last one the problem may concern
    (a chain that disagrees with a checkpoint went wrong somewhere from `sequence` to `through`).
    """

    sequence: int | None
    entry_id: uuid.UUID | None
    problem: str
    through: int | None = None

    def order(self) -> tuple[bool, int]:
        """Chain order; a span after the exact problems inside it, which say more."""
        return (self.sequence is None, self.through or self.sequence or 0)


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    sealed: int
    checkpoints: int
    problems: tuple[Problem, ...]
    problem_count: int = 0
    pending: int = 0
    """Genuine entries not sealed yet (the sealer takes them within seconds)."""
    forged: int = 0
    witnessed: int | None = None
    """The longest chain a witness outside the database vouches for."""

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


@dataclass(slots=True)
class _Findings:
    problems: list[Problem] = field(default_factory=list)
    count: int = 0

    def add(self, sequence: int | None, entry_id: uuid.UUID | None, problem: str, through: int | None = None) -> None:
        self.count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(sequence, entry_id, problem, through))


@dataclass(frozen=True, slots=True)
class _Chain:
    length: int
    sealed: int


async def _walk_chain(
    sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, found: _Findings
) -> _Chain:
    """Recompute the chain from the first seal, a batch at a time, with each sealed entry."""
    seals = models.AuditSeal.__table__
    entries = models.AuditEntry.__table__
    columns = [entries.c[name] for name in (*ENTRY_COLUMNS, "mac_key_id", "mac")]
    previous, expected, sealed, after = GENESIS, 0, 0, 0
    while True:
        async with sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(
                            seals.c.sequence,
                            seals.c.entry_id,
                            seals.c.previous_hash,
                            seals.c.entry_hash,
                            entries.c.id.label("present"),
                            *[column.label(f"log_{column.name}") for column in columns],
                        )
                        .outerjoin(entries, entries.c.id == seals.c.entry_id)
                        .where(seals.c.sequence > after)
                        .order_by(seals.c.sequence)
                        .limit(VERIFY_BATCH)
                    )
                )
                .mappings()
                .all()
            )
        for row in rows:
            sealed += 1
            expected += 1
            sequence, entry_id = row["sequence"], row["entry_id"]
            if sequence != expected:
                found.add(expected, None, f"seals {expected} to {sequence - 1} are missing: the chain was cut")
                expected = sequence
            if row["previous_hash"] != previous:
                found.add(sequence, entry_id, "does not follow the seal before it: entries were reordered or removed")
            if row["present"] is None:
                found.add(sequence, entry_id, "the sealed entry was removed")
            else:
                entry = {column.name: row[f"log_{column.name}"] for column in columns}
                if link(row["previous_hash"], sequence, entry) != row["entry_hash"]:
                    found.add(sequence, entry_id, "the entry was altered after it was sealed")
                elif entry["mac"] is not None and not mac_verifies(keyring, entry):
                    found.add(
                        sequence,
                        entry_id,
                        "the entry's MAC does not verify: it was altered and the chain recomputed after it",
                    )
            previous = row["entry_hash"]
        if len(rows) < VERIFY_BATCH:
            return _Chain(expected, sealed)
        after = rows[-1]["sequence"]
        await asyncio.sleep(0)


@dataclass(slots=True)
class _DatabaseCheckpoints:
    """The database's own checkpoints, read back like a witness's copy."""

    sessions: async_sessionmaker[AsyncSession]
    name: str = "the database"
    external: bool = False
    count: int = 0

    async def checkpoints(self) -> AsyncIterator[Checkpoint | str]:
        table = models.AuditCheckpoint.__table__
        after = 0
        while True:
            async with self.sessions() as session:
                rows = (
                    await session.execute(
                        select(table).where(table.c.sequence > after).order_by(table.c.sequence).limit(VERIFY_BATCH)
                    )
                ).mappings()
                batch = [
                    Checkpoint(row["sequence"], row["entry_hash"], row["key_id"], row["signature"], row["signed_at"])
                    for row in rows
                ]
            for checkpoint in batch:
                self.count += 1
                yield checkpoint
            if len(batch) < VERIFY_BATCH:
                return
            after = batch[-1].sequence


async def _compare(
    sessions: async_sessionmaker[AsyncSession],
    keyring: MasterKeyProvider,
    source: CheckpointSource,
    chain: _Chain,
    found: _Findings,
) -> int | None:
    """Hold the chain against every checkpoint `source` holds; returns the highest it vouches for.

    The chain walk has checked every seal's hash against its entry and its predecessor, so a
    stored seal hash equal to a signed head means the chain up to there is the signed one. The
    first disagreement is reported once: after it, everything later disagrees too.
    """
    holder = "its signed checkpoint" if not source.external else f"the checkpoint witnessed by {source.name}"
    agreed, highest, last_sequence = 0, None, 0
    broken = missing_reported = False
    batch: list[Checkpoint] = []

    async def check(batch: list[Checkpoint]) -> None:
        nonlocal agreed, broken, missing_reported
        seals = models.AuditSeal.__table__
        stored_checkpoints = models.AuditCheckpoint.__table__
        wanted = [checkpoint.sequence for checkpoint in batch]
        async with sessions() as session:
            stored = await session.execute(
                select(seals.c.sequence, seals.c.entry_hash).where(seals.c.sequence.in_(wanted))
            )
            hashes: dict[int, str] = {row.sequence: row.entry_hash for row in stored}
            kept: set[int] = set()
            if source.external:
                kept = set(
                    (
                        await session.execute(
                            select(stored_checkpoints.c.sequence).where(stored_checkpoints.c.sequence.in_(wanted))
                        )
                    ).scalars()
                )
        for checkpoint in batch:
            deleted = source.external and checkpoint.sequence <= chain.length and checkpoint.sequence not in kept
            if deleted and not missing_reported:
                found.add(
                    checkpoint.sequence,
                    None,
                    f"the checkpoint at sequence {checkpoint.sequence}, held by {source.name}, "
                    "was deleted from the database",
                )
                missing_reported = True
            if broken:
                continue
            if checkpoint.sequence > chain.length:
                found.add(
                    agreed + 1,
                    None,
                    f"the chain ends at sequence {chain.length} but {holder} says it reached {checkpoint.sequence} "
                    f"at {moment(checkpoint.signed_at)}: entries after sequence {agreed} were removed (from its end, "
                    "or from within and the chain rebuilt), or the database was restored from an older copy",
                    through=checkpoint.sequence,
                )
                broken = True
            elif hashes.get(checkpoint.sequence) != checkpoint.entry_hash:
                found.add(
                    agreed + 1,
                    None,
                    f"the chain differs from {holder} at sequence {checkpoint.sequence}: "
                    f"it was rewritten after sequence {agreed}",
                    through=checkpoint.sequence,
                )
                broken = True
            else:
                agreed = checkpoint.sequence

    async for item in source.checkpoints():
        if isinstance(item, str):
            found.add(None, None, f"{source.name}: {item}")
            continue
        if item.sequence <= last_sequence:
            found.add(item.sequence, None, f"{source.name}: checkpoint {item.sequence} is out of order")
            continue
        last_sequence = item.sequence
        if not item.verifies(keyring, legacy=not source.external):
            found.add(
                item.sequence,
                None,
                f"{source.name}: the checkpoint at sequence {item.sequence} is not signed by our keys",
            )
            continue
        highest = item.sequence
        batch.append(item)
        if len(batch) >= VERIFY_BATCH:
            await check(batch)
            batch = []
    if batch:
        await check(batch)
    return highest


async def _unsealed(
    sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, found: _Findings
) -> tuple[int, int]:
    """Entries outside the chain: genuine ones waiting for the sealer, and forgeries, reported
    every time with their ids. Returns (pending, forged).
    """
    entries = models.AuditEntry.__table__
    seals = models.AuditSeal.__table__
    pending = forged = 0
    after = 0
    while True:
        async with sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(entries)
                        .where(entries.c.position > after, ~exists().where(seals.c.entry_id == entries.c.id))
                        .order_by(entries.c.position)
                        .limit(VERIFY_BATCH)
                    )
                )
                .mappings()
                .all()
            )
        for row in rows:
            entry = dict(row)
            if mac_verifies(keyring, entry):
                pending += 1
            else:
                forged += 1
                found.add(
                    None,
                    entry["id"],
                    f"entry {entry['id']} was not written by the service ({_forgery_reason(entry)}): "
                    "left out of the chain",
                )
        if len(rows) < VERIFY_BATCH:
            return pending, forged
        after = rows[-1]["position"]


async def verify(
    sessions: async_sessionmaker[AsyncSession],
    keyring: MasterKeyProvider,
    now: datetime,
    witnesses: Sequence[CheckpointSource] = (),
) -> Verification:
    """Recompute the chain, check every checkpoint in the database and at each witness, and look
    at every entry outside the chain; every problem found, in chain order.
    """
    found = _Findings()
    entries = models.AuditEntry.__table__
    async with sessions() as session:
        total = int((await session.execute(select(func.count()).select_from(entries))).scalar_one())
    chain = await _walk_chain(sessions, keyring, found)
    own = _DatabaseCheckpoints(sessions)
    await _compare(sessions, keyring, own, chain, found)
    witnessed: int | None = None
    for source in witnesses:
        try:
            highest = await _compare(sessions, keyring, source, chain, found)
        except WitnessUnreadable as error:
            found.add(None, None, f"{source.name} could not be read: {error}")
            continue
        if highest is not None:
            witnessed = max(witnessed or 0, highest)
    pending, forged = await _unsealed(sessions, keyring, found)
    problems = sorted(found.problems, key=Problem.order)
    return Verification(total, chain.sealed, own.count, tuple(problems), found.count, pending, forged, witnessed)


async def waiting(session: AsyncSession) -> tuple[int, datetime | None]:
    """The entries the sealer has yet to take (after its cursor: an index range on the log's
    tail, never the whole log), and when the oldest of them was written.
    """
    cursor = (await _head(session)).cursor
    entries = models.AuditEntry.__table__
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(entries.c.occurred_at)).where(
                tuple_(entries.c.txid, entries.c.position) > tuple_(literal(cursor[0]), literal(cursor[1]))
            )
        )
    ).one()
    return int(count), oldest


async def unsealed(sessions: async_sessionmaker[AsyncSession]) -> int:
    """How many entries are outside the chain (genuine ones waiting, and any set aside)."""
    log_table = models.AuditEntry.__table__
    seals = models.AuditSeal.__table__
    async with sessions() as session:
        count: int = (
            await session.execute(
                select(func.count()).select_from(log_table).where(~exists().where(seals.c.entry_id == log_table.c.id))
            )
        ).scalar_one()
        return count
