"""The migration chain creates the whole schema, removes it, and creates it again, on SQLite and
PostgreSQL; and the models match the migrations (autogenerate finds nothing to add).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
from api.db import models
from api.db.migrate import current_revision, downgrade, head_revision, upgrade
from api.db.models import Base
from api.db.session import create_engine, create_sessionmaker
from api.services import audit, audit_chain
from tests.api.auditing import quiet
from tests.conftest import BACKENDS, MIGRATIONS, Databases

TABLES = set(Base.metadata.tables)
MONEY_PARTS = ("total", "in_scope", "self_pay_first", "above_standard", "out_of_scope", "patient")


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrade_from_empty_downgrade_to_empty_and_upgrade_again(databases: Databases, backend: str) -> None:
    engine = create_engine(await databases.empty(backend))
    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as connection:
            assert await connection.run_sync(tables) == TABLES
        assert await current_revision(engine) == head_revision(MIGRATIONS)

        await downgrade(engine, MIGRATIONS)
        async with engine.connect() as connection:
            assert await connection.run_sync(tables) == set()
        assert await current_revision(engine) is None

        await upgrade(engine, MIGRATIONS)
        async with engine.connect() as connection:
            assert await connection.run_sync(tables) == TABLES
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrading_numbers_existing_audit_entries_in_chain_order_and_the_sealer_continues_after_them(
    databases: Databases, backend: str, tmp_path: Path
) -> None:
    """Entries written before audit entries carried MACs: the sealed ones keep their place and
    stay verifiable, the sealer starts after them, and one left unsealed cannot be told from a
    forgery, so it is set aside.
    """
    engine = create_engine(await databases.empty(backend))
    sqlite = backend == "sqlite"
    now = datetime.now(UTC)

    def value(entry: uuid.UUID) -> object:
        return entry.hex if sqlite else entry

    def moment(minutes: int) -> object:
        at = now + timedelta(minutes=minutes)
        return at.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at

    first, second, unsealed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    minutes = {first: 3, second: 1, unsealed: 2}  # time order differs from chain order
    try:
        await upgrade(engine, MIGRATIONS, "0004")
        async with engine.begin() as connection:
            for entry in (first, second, unsealed):
                await connection.execute(
                    text(
                        "INSERT INTO audit_log (id, occurred_at, action, outcome, detail) "
                        "VALUES (:id, :at, 'settle', 'allowed', '{}')"
                    ),
                    {"id": value(entry), "at": moment(minutes[entry])},
                )
            previous = audit_chain.GENESIS
            for sequence, entry in enumerate((first, second), start=1):
                content = {
                    **dict.fromkeys(("token_id", "subject", "role", "org", "target")),
                    **{"id": entry, "occurred_at": now + timedelta(minutes=minutes[entry])},
                    **{"action": "settle", "outcome": "allowed", "detail": {}},
                }
                entry_hash = audit_chain.link(previous, sequence, content)
                await connection.execute(
                    text(
                        "INSERT INTO audit_seals (sequence, entry_id, previous_hash, entry_hash, sealed_at) "
                        "VALUES (:sequence, :entry, :previous, :hash, :at)"
                    ),
                    {
                        "sequence": sequence,
                        "entry": value(entry),
                        "previous": previous,
                        "hash": entry_hash,
                        "at": moment(4),
                    },
                )
                previous = entry_hash

        await upgrade(engine, MIGRATIONS)
        sessions = create_sessionmaker(engine)
        keyring = FileKeyring(tmp_path / "keyring", Suite.AES_256_GCM, create_missing=True)
        audit.bind(sessions, keyring)
        await audit.append_alone(sessions, audit.AuditRecord(audit.Actor("after"), "upgrade", "allowed", now))
        await quiet(sessions)
        sealed = await audit_chain.seal(sessions, keyring, now)
        verified = await audit_chain.verify(sessions, keyring, now)
        async with sessions() as session:
            log = models.AuditEntry.__table__
            seals = models.AuditSeal.__table__
            positions = dict((await session.execute(select(log.c.id, log.c.position))).all())
            placed = dict((await session.execute(select(seals.c.sequence, seals.c.entry_position))).all())
            txids = dict((await session.execute(select(log.c.id, log.c.txid))).all())
    finally:
        await engine.dispose()

    newest = max(positions, key=lambda entry: positions[entry])
    assert [positions[first], positions[second], positions[unsealed], positions[newest]] == [1, 2, 3, 4]
    assert placed == {1: 1, 2: 2, 3: 4}
    assert sealed == 1 and verified.sealed == 3 and verified.forged == 1
    assert [problem.entry_id for problem in verified.problems] == [unsealed]
    assert txids[first] == 0 and (txids[newest] > 0) is (backend == "postgresql")


PEOPLE_0008 = sa.table(
    "people",
    *(sa.column(name, sa.String()) for name in ("psn_no", "id_number_index", "insurance_type", "region")),
    *(sa.column(name, sa.LargeBinary()) for name in ("id_number_ct", "name_ct")),
    *(sa.column(name, sa.JSON()) for name in ("memberships", "flags")),
    sa.column("id", sa.Uuid()),
)
SETTLEMENTS_0008 = sa.table(
    "settlements",
    sa.column("id", sa.Uuid()),
    sa.column("person_id", sa.Uuid()),
    *(sa.column(name, sa.String()) for name in ("institution_code", "region", "serial", "request_hash")),
    *(sa.column(name, sa.String()) for name in ("visit", "status")),
    sa.column("service_date", sa.Date()),
    sa.column("year", sa.Integer()),
    sa.column("diagnoses", sa.JSON()),
    sa.column("settled_at", sa.DateTime(timezone=True)),
    *(sa.column(f"{part}_fen", sa.BigInteger()) for part in MONEY_PARTS),
)
"""The two tables as revision 0008 left them, as far as a settlement written then needs."""


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrading_gives_existing_settlements_their_patients_insuring_region(
    databases: Databases, backend: str
) -> None:
    """Revision 0009: a settlement written before it is attributed to its patient's region, whose
    supervisors see it from then on; the downgrade takes the column away again.
    """
    engine = create_engine(await databases.empty(backend))
    people = {"310100": uuid.uuid4(), "320100": uuid.uuid4()}
    settled = {region: uuid.uuid4() for region in people}
    try:
        await upgrade(engine, MIGRATIONS, "0008")
        async with engine.begin() as connection:
            for region, person in people.items():
                await connection.execute(
                    PEOPLE_0008.insert().values(
                        id=person,
                        psn_no=f"P-{region}",
                        id_number_ct=b"-",
                        id_number_index=f"index-{region}",
                        name_ct=b"-",
                        insurance_type="employee",
                        region=region,
                        memberships=[],
                        flags=[],
                    )
                )
                await connection.execute(  # both treated in 310100: one patient at home, one from elsewhere
                    SETTLEMENTS_0008.insert().values(
                        id=settled[region],
                        person_id=person,
                        institution_code="H310003",
                        region="310100",
                        serial=f"S-{region}",
                        request_hash="0" * 64,
                        visit="inpatient",
                        status="settled",
                        service_date=date(2026, 3, 15),
                        year=2026,
                        diagnoses=["C50.9"],
                        settled_at=datetime.now(UTC),
                        **{f"{part}_fen": 0 for part in MONEY_PARTS},
                    )
                )

        await upgrade(engine, MIGRATIONS, "0009")
        async with engine.connect() as connection:
            table = models.Settlement.__table__
            insured = dict((await connection.execute(select(table.c.id, table.c.insured_region))).all())
        await downgrade(engine, MIGRATIONS, "0008")
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {column["name"] for column in inspect(sync).get_columns("settlements")}
            )
    finally:
        await engine.dispose()

    assert insured == {settled["310100"]: "310100", settled["320100"]: "320100"}
    assert "insured_region" not in columns and "region" in columns


def legacy_anomaly(status: str, handled_by: str | None, note: str | None, at: datetime | None) -> dict[str, object]:
    """An anomaly as revision 0009 kept it: one status, note and handler, overwritten in place."""
    return {
        "id": uuid.uuid4(),
        "kind": "CODE_REUSED",
        "severity": "high",
        "status": status,
        "fingerprint": f"legacy:{uuid.uuid4()}",
        "code": None,
        "institution_code": "H310003",
        "region": "310100",
        "drug_code": None,
        "settlement_id": None,
        "detected_at": datetime(2026, 5, 1, tzinfo=UTC),
        "detected_by": "scan",
        "detail": {"message": "legacy"},
        "handled_by": handled_by,
        "handled_at": at,
        "note": note,
    }


async def take_step(engine: AsyncEngine, anomaly: object, sequence: int, kind: str, at: datetime) -> None:
    """A step as the service takes it: the step, then the anomaly's status."""
    anomalies = models.Anomaly.__table__
    supervisor = kind != "explained"
    async with engine.begin() as connection:
        await connection.execute(
            insert(models.AnomalyStep.__table__).values(
                id=uuid.uuid4(),
                anomaly_id=anomaly,
                sequence=sequence,
                kind=kind,
                note=f"{kind} at head",
                role="supervisor" if supervisor else "pharmacy",
                org="NHSA-SUPERVISION" if supervisor else "P310001",
                subject="someone",
                taken_at=at,
            )
        )
        await connection.execute(update(anomalies).where(anomalies.c.id == anomaly).values(status=kind))


async def kept(engine: AsyncEngine) -> dict[object, tuple[object, ...]]:
    """Each anomaly's status and the old columns of its handling."""
    table = models.Anomaly.__table__
    columns = (table.c.status, table.c.handled_by, table.c.handled_at, table.c.note)
    async with engine.connect() as connection:
        return {row[0]: tuple(row[1:]) for row in await connection.execute(select(table.c.id, *columns))}


async def taken(engine: AsyncEngine) -> set[tuple[object, ...]]:
    table = models.AnomalyStep.__table__
    columns = ("anomaly_id", "sequence", "kind", "note", "role", "org", "subject", "taken_at")
    async with engine.connect() as connection:
        return {tuple(row) for row in await connection.execute(select(*(table.c[name] for name in columns)))}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrading_keeps_each_handled_anomalys_note_as_its_first_step_and_downgrading_gives_it_back(
    databases: Databases, backend: str
) -> None:
    """Revision 0010 copies what 0009 kept of a handling into a step (who split into role,
    organisation and subject) and leaves the old columns as they were; its downgrade puts a
    single step back in them, and refuses what they cannot hold (a second step, a dismissal).
    """
    engine = create_engine(await databases.empty(backend))
    at = datetime(2026, 5, 2, 8, 30, tzinfo=UTC)
    later = at + timedelta(days=1)
    untouched = legacy_anomaly("open", None, None, None)
    explained = legacy_anomaly("explained", "hospital:H310003:cashier-wang", "扫码枪重复读取", at)
    confirmed = legacy_anomaly("confirmed", "supervisor:NHSA-SUPERVISION:system:local", "confirmed", at)
    imported = legacy_anomaly("explained", None, None, None)  # handled, says its status; by nobody known
    legacy = [untouched, explained, confirmed, imported]

    def as_kept(anomaly: dict[str, object]) -> tuple[object, ...]:
        return anomaly["status"], anomaly["handled_by"], anomaly["handled_at"], anomaly["note"]

    try:
        await upgrade(engine, MIGRATIONS, "0009")
        async with engine.begin() as connection:
            await connection.execute(insert(models.Anomaly.__table__), legacy)
        await upgrade(engine, MIGRATIONS)
        upgraded, first_steps = await kept(engine), await taken(engine)

        await take_step(engine, untouched["id"], 1, "explained", later)
        await downgrade(engine, MIGRATIONS, "0009")
        downgraded = await kept(engine)

        await upgrade(engine, MIGRATIONS)
        await take_step(engine, explained["id"], 2, "dismissed", later)
        with pytest.raises(RuntimeError, match="dismissed anomalies: 1, anomalies handled in more than one step: 1"):
            await downgrade(engine, MIGRATIONS, "0009")
        revision = await current_revision(engine)
    finally:
        await engine.dispose()

    assert first_steps == {
        (explained["id"], 1, "explained", "扫码枪重复读取", "hospital", "H310003", "cashier-wang", at),
        (confirmed["id"], 1, "confirmed", "confirmed", "supervisor", "NHSA-SUPERVISION", "system:local", at),
    }
    assert upgraded == {anomaly["id"]: as_kept(anomaly) for anomaly in legacy}  # the old columns, as they were
    assert downgraded == {
        **{anomaly["id"]: as_kept(anomaly) for anomaly in legacy},
        untouched["id"]: ("explained", "pharmacy:P310001:someone", later, "explained at head"),
    }
    assert revision == head_revision(MIGRATIONS)  # the refused downgrade changed nothing
