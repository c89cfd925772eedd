"""The audit log as the tests reach it: through the service (verifyAuditLog) and, like someone
holding the database's owner's or superuser's access, straight into its tables.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
from api.db import models
from api.db.session import create_engine, create_sessionmaker
from api.db.statements import is_postgresql
from api.services import audit, audit_chain, audit_witness
from api.settings import PROJECT_ROOT
from tests.api.conftest import Service, witness_dir_for
from tests.conftest import ADMIN_URL, _asyncpg_dsn

VERIFY = (
    "{ verifyAuditLog { intact entries sealed pending forged checkpoints witnessed firstProblem "
    "firstProblemSequence firstProblemEntry problems { sequence through entry problem } problemCount } }"
)


class Chain:
    """The service's audit log, and a hand that can reach into its database as the owner."""

    def __init__(self, service: Service, backend: str) -> None:
        self.service = service
        self.backend = backend
        self.keyring = FileKeyring(service.tokens.keyring_dir, Suite.AES_256_GCM, create_missing=True)
        self.engine = create_engine(service.database_url)
        self.sessions = create_sessionmaker(self.engine)
        audit.bind(self.sessions, self.keyring)
        self.witness_file = witness_dir_for(service.database_url, service.tokens) / audit_witness.FILE_NAME

    def sealer(self, checkpoint_interval: timedelta = timedelta(0)) -> audit_chain.Sealer:
        """The service's sealer with its file witness (by default, a checkpoint every round)."""
        return audit_chain.Sealer(
            self.sessions, self.keyring, checkpoint_interval, audit_witness.FileWitness(self.witness_file)
        )

    async def seal(self, sealer: audit_chain.Sealer | None = None, now: datetime | None = None) -> int:
        """Seal everything committed so far (waiting, on PostgreSQL, for it to be sealable)."""
        await quiet(self.sessions)
        sealer = sealer or audit_chain.Sealer(self.sessions, self.keyring)
        return await sealer.seal(now or datetime.now(UTC))

    async def verify(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self.service.as_(self.service.tokens.supervisor()).graphql(VERIFY))[
            "verifyAuditLog"
        ]
        return result

    async def entries(self) -> list[dict[str, Any]]:
        """The sealed entries, in chain order, each with its sequence."""
        log = models.AuditEntry.__table__
        seals = models.AuditSeal.__table__
        async with self.sessions() as session:
            rows = await session.execute(
                select(log, seals.c.sequence).join(seals, seals.c.entry_id == log.c.id).order_by(seals.c.sequence)
            )
            return [dict(row) for row in rows.mappings()]

    async def count(self, table: str) -> int:
        async with self.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(text(table)))).scalar_one())

    async def checkpoint_sequences(self) -> list[int]:
        table = models.AuditCheckpoint.__table__
        async with self.sessions() as session:
            return list((await session.execute(select(table.c.sequence).order_by(table.c.sequence))).scalars())

    async def tamper(self, statement: str, **parameters: Any) -> None:
        """Change rows directly, as someone with the database's owner's access (SQLite) or as the
        superuser with every trigger disabled (PostgreSQL).
        """
        if self.backend == "sqlite":  # ids are stored as hex there
            plain = {name: value.hex if isinstance(value, uuid.UUID) else value for name, value in parameters.items()}
            async with self.engine.begin() as connection:
                await connection.execute(text(statement), plain)
            return
        database = self.service.database_url.rsplit("/", 1)[1]
        connection = await asyncpg.connect(_asyncpg_dsn(ADMIN_URL).rsplit("/", 1)[0] + "/" + database)
        try:
            await connection.execute("SET session_replication_role = replica")  # past the append-only triggers
            converted = statement
            for index, name in enumerate(sorted(parameters, key=len, reverse=True), start=1):
                converted = converted.replace(f":{name}", f"${index}")
            ordered = sorted(parameters, key=len, reverse=True)
            await connection.execute(converted, *[parameters[name] for name in ordered])
        finally:
            await connection.close()

    async def settle_cli(self, *args: str, **variables: str) -> tuple[int, str]:
        """`settle ...` in a child process against this database (without blocking the loop)."""
        environment = {
            **os.environ,
            "DATABASE_URL": self.service.database_url,
            "SETTLE_KEYS_DIR": str(self.service.tokens.keys_dir),
            "SETTLE_KEYRING_DIR": str(self.service.tokens.keyring_dir),
            "SETTLE_AUDIT_WITNESS_DIR": str(self.witness_file.parent),
            **variables,
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "api.cli",
            *args,
            env=environment,
            cwd=PROJECT_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await child.communicate()
        assert child.returncode is not None
        return child.returncode, output.decode()


async def quiet(sessions: async_sessionmaker[AsyncSession], seconds: float = 30.0) -> None:
    """On PostgreSQL, wait until every committed entry can be sealed: the sealer takes only the
    entries of transactions older than the oldest one still running on the (shared) cluster.
    """
    async with sessions() as session:
        if not is_postgresql(session):
            return
    for _ in range(int(seconds / 0.05)):
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
    raise AssertionError(f"a transaction on the cluster stayed open for {seconds} s: nothing could be sealed")


def witness_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
