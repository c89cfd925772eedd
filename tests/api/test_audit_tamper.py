"""Supervisors can trust what the audit log says, against someone holding the database's rights:

- an entry inserted with the application role's own rights (no trigger bypassed) carries no
  valid MAC: the running service's sealer refuses to chain it, raises an AUDIT_FORGERY anomaly,
  and verification names it every time, while genuine entries after it are sealed;
- with every trigger disabled (the superuser on PostgreSQL, the file's owner on SQLite), cutting
  the chain's tail, deleting the checkpoints, emptying the log, or rebuilding the chain after an
  edit or a deletion is found by holding the database against what the witnesses hold, at the
  first bad sequence number;
- the sealer never skips an entry whose transaction commits late, and signs a checkpoint at
  least every interval while entries arrive;
- entries and checkpoints made under rotated keys still verify, by the key each one names.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from api.app import create_app
from api.crypto import management
from api.crypto.keyring import AuditKeyPurpose, AuditKeyState, FileKeyring
from api.crypto.suites import Suite, sm4_gcm_available
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.ids import uuid7
from api.services import audit, audit_chain, audit_witness
from api.settings import Mode
from tests.api.auditing import Chain, quiet, witness_lines
from tests.api.conftest import Service, running, serving, settings_for
from tests.api.documents import REFERENCE_DATA, SETTLE, claim
from tests.api.tokens import Tokens
from tests.conftest import Databases, _asyncpg_dsn

ANOMALIES = """query($f: AnomalyFilter) { anomalies(first: 50, filter: $f) {
  edges { node { kind severity institution region detail } } } }"""


async def settle(service: Service, *serials: str) -> None:
    for serial in serials:
        assert (await service.graphql(SETTLE, {"claim": claim(serial)}))["settle"]["__typename"] == "Settlement"


# --- forgery with the application's own rights ---------------------------------------------------


async def forge(service: Service, backend: str, *, copy_mac_of: dict[str, Any] | None) -> uuid.UUID:
    """INSERT a made-up entry with the application's own connection and rights: no trigger is
    bypassed. It claims to be a cashier's settlement; with `copy_mac_of`, it carries a genuine
    entry's MAC and key id.
    """
    forged = uuid7()
    mac_key_id = None if copy_mac_of is None else copy_mac_of["mac_key_id"]
    mac = None if copy_mac_of is None else copy_mac_of["mac"]
    at = datetime.now(UTC)
    if backend == "postgresql":
        connection = await asyncpg.connect(_asyncpg_dsn(service.database_url))  # the application's role
        try:
            await connection.execute(
                "INSERT INTO audit_log (id, occurred_at, org, action, outcome, detail, mac_key_id, mac, txid) "
                "VALUES ($1, $2, 'H31010100001', 'settle', 'allowed', '{}'::json, $3, $4, 0)",
                forged,
                at,
                mac_key_id,
                mac,
            )
        finally:
            await connection.close()
        return forged
    engine = create_engine(service.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO audit_log (id, occurred_at, org, action, outcome, detail, mac_key_id, mac, position) "
                    "SELECT :id, :at, 'H31010100001', 'settle', 'allowed', '{}', :key, :mac, max(position) + 1 "
                    "FROM audit_log"
                ),
                {"id": forged.hex, "at": at.strftime("%Y-%m-%d %H:%M:%S.%f"), "key": mac_key_id, "mac": mac},
            )
    finally:
        await engine.dispose()
    return forged


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the running sealer did not get there in time")


@pytest.fixture
async def sealing_service(databases: Databases, tokens: Tokens, backend: str) -> AsyncIterator[Service]:
    """The service with its sealer running every 0.1 s, the reference data loaded."""
    url = await databases.fresh(backend)
    settings = settings_for(url, tokens).replace(audit_seal_seconds=0.1)
    async with running(create_app(settings)) as client:
        service = Service(client, url, tokens, tokens.hospital)
        assert (await service.load(copy.deepcopy(REFERENCE_DATA)))["__typename"] == "LoadSummary"
        yield service
    assert await service.violations() == []


async def test_entries_forged_with_the_applications_own_rights_are_refused_by_the_running_sealer_and_reported(
    sealing_service: Service, backend: str
) -> None:
    service = sealing_service
    chain = Chain(service, backend)
    try:
        await settle(service, "F-1")
        await eventually(lambda: _no_unsealed(chain))
        genuine = (await chain.entries())[-1]

        copied = await forge(service, backend, copy_mac_of=genuine)  # a real MAC, on other content
        bare = await forge(service, backend, copy_mac_of=None)
        await settle(service, "F-2")  # genuine entries after the forgeries

        async def set_aside() -> bool:
            return await chain.count("audit_rejections") == 2 and await audit_chain.unsealed(chain.sessions) == 2

        await eventually(set_aside)
        sealed_ids = {entry["id"] for entry in await chain.entries()}
        result = await chain.verify()
        again = await chain.verify()
        visible_elsewhere = await service.as_(service.tokens.supervisor("320100")).graphql(
            ANOMALIES, {"f": {"kind": "AUDIT_FORGERY"}}
        )
        to_the_hospital = await service.graphql(ANOMALIES, {"f": {"kind": "AUDIT_FORGERY"}})
        rounds_later = await chain.sealer().seal(datetime.now(UTC))
        rejections = await chain.count("audit_rejections")
        txids = await _txids(chain, [copied, bare])
    finally:
        await chain.engine.dispose()

    assert copied not in sealed_ids and bare not in sealed_ids  # never chained
    assert (result["intact"], result["forged"], result["pending"]) == (False, 2, 0)  # F-2's entries were sealed
    assert result["sealed"] == result["entries"] - 2
    assert {problem["entry"] for problem in result["problems"]} == {str(copied), str(bare)}
    assert all("not written by the service" in problem["problem"] for problem in result["problems"])
    assert again["problems"] == result["problems"]  # reported every time
    anomalies = [edge["node"] for edge in visible_elsewhere["anomalies"]["edges"]]
    assert {anomaly["detail"]["entry_id"] for anomaly in anomalies} == {str(copied), str(bare)}
    assert {(a["severity"], a["institution"], a["region"]) for a in anomalies} == {("high", "SYSTEM", "*")}
    assert to_the_hospital["anomalies"]["edges"] == []  # the forger's claimed institution is not told
    assert (rounds_later, rejections) == (0, 2)  # set aside once: the sealer does not read them again
    if backend == "postgresql":
        assert all(txid > 0 for txid in txids)  # the trigger stamped the transaction, whatever was sent


async def _no_unsealed(chain: Chain) -> bool:
    return await audit_chain.unsealed(chain.sessions) == 0


async def _txids(chain: Chain, ids: list[uuid.UUID]) -> list[int]:
    table = models.AuditEntry.__table__
    async with chain.sessions() as session:
        return list((await session.execute(select(table.c.txid).where(table.c.id.in_(ids)))).scalars())


# --- deletion, at the tail and everywhere, against the witnesses ---------------------------------


@pytest.fixture
async def witnessed(service: Service, backend: str) -> AsyncIterator[Chain]:
    """Five settlements sealed in two rounds, each round ending in a checkpoint the file witness
    holds: the first at c1, the second at the head c2.
    """
    chain = Chain(service, backend)
    sealer = chain.sealer()
    try:
        await settle(service, "W-1", "W-2", "W-3")
        assert await chain.seal(sealer) >= 4
        await settle(service, "W-4", "W-5")
        assert await chain.seal(sealer) == 2
        yield chain
    finally:
        await chain.engine.dispose()


Tampering = Callable[[Chain, list[dict[str, Any]], list[int]], Awaitable[None]]


async def cut_the_tail(chain: Chain, entries: list[dict[str, Any]], checkpoints: list[int]) -> None:
    """Remove the entries after the first checkpoint, their seals and the checkpoint after it,
    which is also what restoring a copy of the database taken at c1 does.
    """
    first = checkpoints[0]
    await chain.tamper("DELETE FROM audit_checkpoints WHERE sequence > :first", first=first)
    await chain.tamper("DELETE FROM audit_seals WHERE sequence > :first", first=first)
    for entry in entries[first:]:
        await chain.tamper("DELETE FROM audit_log WHERE id = :id", id=entry["id"])


async def delete_the_checkpoints(chain: Chain, entries: list[dict[str, Any]], checkpoints: list[int]) -> None:
    await chain.tamper("DELETE FROM audit_checkpoints")


async def delete_everything(chain: Chain, entries: list[dict[str, Any]], checkpoints: list[int]) -> None:
    for table in ("audit_checkpoints", "audit_seals", "audit_rejections", "audit_log"):
        await chain.tamper(f"DELETE FROM {table}")


async def rebuild(chain: Chain, sequence: int, drop: bool) -> None:
    """Recompute every seal from `sequence` on (renumbered when an entry was dropped) and delete
    the database's checkpoints after the first, so that the database agrees with itself.
    """
    seals = models.AuditSeal.__table__
    async with chain.sessions() as session:
        rows = (await session.execute(select(seals).order_by(seals.c.sequence))).mappings().all()
    if drop:
        for row in rows:
            if row["sequence"] > sequence:
                await chain.tamper(
                    "UPDATE audit_seals SET sequence = :lower WHERE sequence = :seq",
                    lower=row["sequence"] - 1,
                    seq=row["sequence"],
                )
    entries = {entry["id"]: entry for entry in await chain.entries()}
    async with chain.sessions() as session:
        rows = (await session.execute(select(seals).order_by(seals.c.sequence))).mappings().all()
    previous = audit_chain.GENESIS
    for row in rows:
        if row["sequence"] >= sequence:
            entry_hash = audit_chain.link(previous, row["sequence"], entries[row["entry_id"]])
            await chain.tamper(
                "UPDATE audit_seals SET previous_hash = :prev, entry_hash = :hash WHERE sequence = :seq",
                prev=previous,
                hash=entry_hash,
                seq=row["sequence"],
            )
            previous = entry_hash
        else:
            previous = row["entry_hash"]
    first = (await chain.checkpoint_sequences())[0]
    await chain.tamper("DELETE FROM audit_checkpoints WHERE sequence > :first", first=first)


async def edit_and_rebuild(chain: Chain, entries: list[dict[str, Any]], checkpoints: list[int]) -> None:
    victim = entries[checkpoints[0]]  # the first entry after c1
    await chain.tamper("UPDATE audit_log SET outcome = 'denied' WHERE id = :id", id=victim["id"])
    await rebuild(chain, victim["sequence"], drop=False)


async def delete_and_rebuild(chain: Chain, entries: list[dict[str, Any]], checkpoints: list[int]) -> None:
    victim = entries[checkpoints[0]]
    await chain.tamper("DELETE FROM audit_seals WHERE entry_id = :id", id=victim["id"])
    await chain.tamper("DELETE FROM audit_log WHERE id = :id", id=victim["id"])
    await rebuild(chain, victim["sequence"], drop=True)


def after_c1(checkpoints: list[int]) -> int:
    return checkpoints[0] + 1


@pytest.mark.parametrize(
    ("tampering", "first_bad", "problem"),
    [
        (cut_the_tail, after_c1, "the chain ends at sequence"),
        (delete_the_checkpoints, lambda c: c[0], "was deleted from the database"),
        (delete_everything, lambda c: 1, "the chain ends at sequence 0"),
        (edit_and_rebuild, after_c1, "MAC does not verify"),
        (delete_and_rebuild, after_c1, "or from within and the chain rebuilt"),
    ],
    ids=[
        "cut the tail (or restore an older copy)",
        "delete every checkpoint",
        "delete everything",
        "edit an entry and rebuild the chain",
        "delete an entry and rebuild the chain",
    ],
)
async def test_deletions_and_rebuilt_chains_are_found_at_the_first_bad_sequence_by_the_witness(
    witnessed: Chain, tampering: Tampering, first_bad: Callable[[list[int]], int], problem: str
) -> None:
    chain = witnessed
    entries = await chain.entries()
    checkpoints = await chain.checkpoint_sequences()
    before = await chain.verify()

    await tampering(chain, entries, checkpoints)
    after = await chain.verify()
    without_witness = await chain.settle_cli("audit", "verify", "--witness", str(chain.witness_file.parent / "none"))
    status, printed = await chain.settle_cli("audit", "verify", "--witness", str(chain.witness_file))

    assert len(checkpoints) == 2 and len(witness_lines(chain.witness_file)) == 2
    assert (before["intact"], before["witnessed"]) == (True, checkpoints[1])
    assert after["intact"] is False
    assert after["firstProblemSequence"] == first_bad(checkpoints)
    assert problem in after["firstProblem"]
    if tampering is edit_and_rebuild:  # the witness disagrees too, over the span the edit may lie in
        assert "differs from the checkpoint witnessed" in after["problems"][-1]["problem"]
        assert (after["problems"][-1]["sequence"], after["problems"][-1]["through"]) == (
            after_c1(checkpoints),
            checkpoints[1],
        )
    assert status == 1 and f"BROKEN at sequence {first_bad(checkpoints)} " in printed
    assert "could not be read" in without_witness[1]  # a witness named but missing is a problem too


async def test_without_its_witness_the_database_alone_cannot_tell_a_cut_tail(witnessed: Chain) -> None:
    """Why the witness is outside: the database, cut along with its checkpoint, agrees with itself."""
    chain = witnessed
    await cut_the_tail(chain, await chain.entries(), await chain.checkpoint_sequences())
    chain.witness_file.rename(chain.witness_file.with_suffix(".moved"))

    result = await chain.verify()

    assert (result["intact"], result["witnessed"]) == (True, None)


# --- the sealer: order, cost, checkpoints --------------------------------------------------------


async def test_an_entry_whose_transaction_commits_after_a_later_one_is_sealed_not_skipped(
    service: Service, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has one writer: entries commit in the order they are numbered")
    chain = Chain(service, backend)
    record = audit.AuditRecord(audit.Actor("late"), "slow write", "allowed", datetime.now(UTC))
    try:
        await chain.seal()
        async with chain.sessions() as slow:
            await audit.append(slow, record)  # numbered and stamped first, committed last
            quick = audit.AuditRecord(audit.Actor("quick"), "quick write", "allowed", datetime.now(UTC))
            await audit.append_alone(chain.sessions, quick)
            while_open = await audit_chain.seal(chain.sessions, chain.keyring, datetime.now(UTC))
            await slow.commit()
        after_commit = await chain.seal()
        actors = [entry["token_id"] for entry in await chain.entries()][-2:]
        result = await chain.verify()
    finally:
        await chain.engine.dispose()

    assert while_open == 0  # the quick entry waits: an older transaction is still running
    assert after_commit == 2 and actors == ["late", "quick"]
    assert result["intact"] is True and result["pending"] == 0


async def test_a_checkpoint_is_signed_at_least_every_interval_while_entries_arrive(
    service: Service, backend: str
) -> None:
    chain = Chain(service, backend)
    sealer = chain.sealer(checkpoint_interval=timedelta(seconds=10))
    start = datetime.now(UTC)
    record = audit.AuditRecord(audit.Actor("clock"), "write", "allowed", start)
    try:
        await chain.seal(sealer, start)
        first = await chain.checkpoint_sequences()
        await audit.append_alone(chain.sessions, record)
        await chain.seal(sealer, start + timedelta(seconds=3))
        too_soon = await chain.checkpoint_sequences()
        await chain.seal(sealer, start + timedelta(seconds=10))  # nothing new, but the head moved since the last
        due = await chain.checkpoint_sequences()
        await chain.seal(sealer, start + timedelta(seconds=30))
        idle = await chain.checkpoint_sequences()
        head = (await chain.entries())[-1]["sequence"]
    finally:
        await chain.engine.dispose()

    assert len(first) == 1 and too_soon == first
    assert due == [*first, head] and idle == due
    assert [json.loads(line)["sequence"] for line in witness_lines(chain.witness_file)] == due


# --- GET /audit/checkpoints and the supervisors' HTTP witnesses ----------------------------------


async def test_audit_checkpoints_are_served_to_supervisors_and_administrators_only(
    service: Service, backend: str
) -> None:
    chain = Chain(service, backend)
    try:
        await settle(service, "C-1")
        await chain.seal(chain.sealer())
        await settle(service, "C-2")
        await chain.seal(chain.sealer())
        sequences = await chain.checkpoint_sequences()
        denied_before = await _denied(chain)

        def get(token: str | None, after: str = "0") -> Awaitable[httpx.Response]:
            headers = {} if token is None else {"authorization": f"Bearer {token}"}
            return service.client.get("/audit/checkpoints", params={"after": after}, headers=headers)

        supervisor = await get(service.tokens.supervisor())
        admin_after_first = await get(service.tokens.admin, str(sequences[0]))
        hospital = await get(service.tokens.hospital)
        nobody = await get(None)
        malformed = await get(service.tokens.admin, "-1")
        denied_after = await _denied(chain)
    finally:
        await chain.engine.dispose()

    lines = [audit_witness.from_line(line) for line in supervisor.text.splitlines()]
    assert supervisor.status_code == 200 and supervisor.headers["content-type"].startswith("application/x-ndjson")
    assert [line.checkpoint.sequence for line in lines] == sequences
    assert all(line.proves_itself() for line in lines)
    assert [audit_witness.from_line(x).checkpoint.sequence for x in admin_after_first.text.splitlines()] == sequences[
        1:
    ]
    assert (hospital.status_code, nobody.status_code, malformed.status_code) == (403, 401, 400)
    assert denied_after == denied_before + 1  # the hospital's attempt is audited


async def _denied(chain: Chain) -> int:
    table = models.AuditEntry.__table__
    async with chain.sessions() as session:
        rows = await session.execute(select(table.c.id).where(table.c.action == "export audit checkpoints"))
        return len(rows.all())


def static_file(path: Path) -> Starlette:
    """A supervisor's copy, served read-only as any static web server would."""

    async def copy_of(request: Request) -> Response:
        return FileResponse(path, media_type="application/x-ndjson")

    return Starlette(routes=[Route("/checkpoints.jsonl", copy_of)])


async def test_a_supervisors_witness_pulls_the_checkpoints_and_verification_reads_its_copy_over_http(
    databases: Databases, tokens: Tokens, backend: str, tmp_path: Path
) -> None:
    url = await databases.fresh(backend)
    async with serving(create_app(settings_for(url, tokens))) as base, httpx.AsyncClient(base_url=base) as client:
        service = Service(client, url, tokens, tokens.hospital)
        await service.load(copy.deepcopy(REFERENCE_DATA))
        chain = Chain(service, backend)
        try:
            await settle(service, "H-1")
            await chain.seal(chain.sealer())
            await settle(service, "H-2")
            await chain.seal(chain.sealer())
            copy_of = audit_witness.FileWitness(tmp_path / "supervisor" / "checkpoints.jsonl")
            pulled = await asyncio.to_thread(audit_witness.pull, base, tokens.supervisor(), copy_of)
            pulled_again = await asyncio.to_thread(audit_witness.pull, base, tokens.supervisor(), copy_of)
            by_command = tmp_path / "by-command.jsonl"
            command = await chain.settle_cli(
                "audit", "witness", base, "--file", str(by_command), "--once", SETTLE_WITNESS_TOKEN=tokens.supervisor()
            )
            with pytest.raises(audit_witness.WitnessError, match="403"):
                await asyncio.to_thread(audit_witness.pull, base, tokens.hospital, copy_of)
            async with serving(static_file(copy_of.path)) as witness_base:
                source = audit_witness.UrlSource(f"{witness_base}/checkpoints.jsonl")
                intact = await audit_chain.verify(chain.sessions, chain.keyring, datetime.now(UTC), [source])
                await cut_the_tail(chain, await chain.entries(), await chain.checkpoint_sequences())
                chain.witness_file.unlink()  # the service's own file witness gone too: the supervisor's remains
                cut = await audit_chain.verify(chain.sessions, chain.keyring, datetime.now(UTC), [source])
                status, printed = await chain.settle_cli("audit", "verify", "--witness", source.url)
                missing = audit_witness.UrlSource(f"{witness_base}/nothing.jsonl")
                unreadable = await audit_chain.verify(chain.sessions, chain.keyring, datetime.now(UTC), [missing])
        finally:
            await chain.engine.dispose()

    assert (pulled, pulled_again) == (2, 0)
    assert command[0] == 0 and by_command.read_text() == copy_of.path.read_text(), command[1]
    assert intact.intact and intact.witnessed == copy_of.last_sequence()
    assert cut.first is not None and "witnessed by the witness at http" in cut.first.problem
    assert status == 1 and "BROKEN at sequence" in printed
    assert unreadable.first is not None and "could not be read" in unreadable.first.problem


def test_the_file_witness_only_ever_grows_in_sequence(tmp_path: Path) -> None:
    keyring = FileKeyring(tmp_path / "keyring", Suite.AES_256_GCM, create_missing=True)

    def line(sequence: int) -> audit_witness.WitnessedCheckpoint:
        at = datetime.now(UTC)
        key_id, signature = keyring.sign(audit_chain.checkpoint_message(sequence, "a" * 64, at))
        public_key = keyring.audit_public_key(key_id)
        assert public_key is not None
        return audit_witness.WitnessedCheckpoint(
            audit_chain.Checkpoint(sequence, "a" * 64, key_id, signature, at), public_key
        )

    witness = audit_witness.FileWitness(tmp_path / "witness" / "checkpoints.jsonl")
    written = [witness.append([line(3), line(5)]), witness.append([line(4), line(5)]), witness.append([line(9)])]
    with open(witness.path, "ab") as handle:
        handle.write(b'{"format": "settle-audit-check')  # a line torn by a crash
    after_tear = witness.append([line(12)])

    sequences = [audit_witness.from_line(x).checkpoint.sequence for x in witness_lines(witness.path)[:3]]
    assert written == [2, 0, 1] and sequences == [3, 5, 9]
    assert after_tear == 1 and witness.last_sequence() == 12


async def test_production_refuses_to_seal_without_a_witness_folder(databases: Databases, tokens: Tokens) -> None:
    url = await databases.fresh("sqlite")
    settings = settings_for(url, tokens, Mode.PRODUCTION).replace(audit_witness_dir=None, audit_seal_seconds=1)
    with pytest.raises(audit_witness.WitnessError, match="SETTLE_AUDIT_WITNESS_DIR"):
        async with running(create_app(settings)):
            pass
    explicit = settings.replace(audit_witness_dir="off")
    async with running(create_app(explicit)) as client:
        assert (await client.get("/healthz")).status_code == 200


# --- rotation of the audit keys ------------------------------------------------------------------


@pytest.mark.parametrize("suite", [Suite.AES_256_GCM, Suite.SM4_GCM], ids=["hmac-sha256", "hmac-sm3"])
async def test_entries_and_checkpoints_under_rotated_audit_keys_still_verify_by_the_key_each_names(
    databases: Databases, backend: str, suite: Suite, tmp_path: Path
) -> None:
    if suite is Suite.SM4_GCM and not sm4_gcm_available():
        pytest.skip("this OpenSSL has no SM4-GCM and SM3")
    keyring = FileKeyring(tmp_path / "keyring", suite, create_missing=False)  # as in production: provisioned
    first_keys = management.rotate_audit(keyring)
    engine = create_engine(await databases.fresh(backend))
    sessions = create_sessionmaker(engine)
    audit.bind(sessions, keyring)
    sealer = audit_chain.Sealer(sessions, keyring, timedelta(0))

    def entry(what: str) -> audit.AuditRecord:
        return audit.AuditRecord(audit.Actor("rotation"), what, "allowed", datetime.now(UTC))

    try:
        await audit.append_alone(sessions, entry("before"), entry("before, too"))
        await quiet(sessions)
        await sealer.seal(datetime.now(UTC))
        second_keys = management.rotate_audit(keyring)
        await audit.append_alone(sessions, entry("after"))
        await quiet(sessions)
        await sealer.seal(datetime.now(UTC))
        verified = await audit_chain.verify(sessions, keyring, datetime.now(UTC))
        async with sessions() as session:
            log = models.AuditEntry.__table__
            checkpoints = models.AuditCheckpoint.__table__
            mac_keys = list((await session.execute(select(log.c.mac_key_id).order_by(log.c.position))).scalars())
            signing_keys = list(
                (await session.execute(select(checkpoints.c.key_id).order_by(checkpoints.c.sequence))).scalars()
            )
        forgetful = tmp_path / "without-the-first-mac-key"
        shutil.copytree(keyring.directory, forgetful)
        (forgetful / f"{first_keys[0].key_id}.json").unlink()
        without_old_key = await audit_chain.verify(
            sessions, FileKeyring(forgetful, suite, create_missing=False), datetime.now(UTC)
        )
    finally:
        await engine.dispose()

    old_mac, old_signing = (key.key_id for key in first_keys)
    new_mac, new_signing = (key.key_id for key in second_keys)
    states = {key.key_id: (key.purpose, key.state) for key in keyring.audit_keys()}
    assert verified.intact and verified.sealed == 3 and verified.checkpoints == 2
    assert mac_keys == [old_mac, old_mac, new_mac] and signing_keys == [old_signing, new_signing]
    assert states == {
        old_mac: (AuditKeyPurpose.MAC, AuditKeyState.VERIFY_ONLY),
        old_signing: (AuditKeyPurpose.SIGNING, AuditKeyState.VERIFY_ONLY),
        new_mac: (AuditKeyPurpose.MAC, AuditKeyState.ACTIVE),
        new_signing: (AuditKeyPurpose.SIGNING, AuditKeyState.ACTIVE),
    }
    assert {key.algorithm for key in keyring.audit_keys() if key.purpose is AuditKeyPurpose.MAC} == {
        "hmac-sha256" if suite is Suite.AES_256_GCM else "hmac-sm3"
    }
    assert [problem.sequence for problem in without_old_key.problems] == [1, 2]  # the old key proves those two


def test_an_entry_under_a_key_rotated_by_another_process_verifies_at_once(tmp_path: Path) -> None:
    """The sealer's keyring rereads its folder once a second; an entry MACed under a key made
    since must not be taken for a forgery in between, and a made-up key id costs no reread.
    """
    sealer_side = FileKeyring(tmp_path / "keyring", Suite.AES_256_GCM, create_missing=False)
    management.rotate_audit(sealer_side)
    sealer_side.audit_keys()  # read now: the next regular reread is a second away
    writer_side = FileKeyring(tmp_path / "keyring", Suite.AES_256_GCM, create_missing=False)
    management.rotate_audit(writer_side)
    key_id, mac = writer_side.audit_mac(b"an entry")

    assert sealer_side.verify_audit_mac(key_id, b"an entry", mac)
    assert not sealer_side.verify_audit_mac("audit-mac-20260101000000-abcdef", b"an entry", mac)
    assert not sealer_side.verify_audit_mac("../../../etc/passwd", b"an entry", mac)
