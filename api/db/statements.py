"""Statements whose SQL differs between SQLite and PostgreSQL, behind one name each."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


MAX_PARAMETERS = 30_000
"""Below PostgreSQL's 32,767 bind parameters per statement (SQLite allows more)."""


def chunks(rows: Sequence[Any], width: int = 1) -> list[Sequence[Any]]:
    """`rows` in groups small enough for one statement each (`width` parameters per row)."""
    size = max(1, MAX_PARAMETERS // max(1, width))
    return [rows[start : start + size] for start in range(0, len(rows), size)]


async def insert_missing(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert the rows whose `keys` are not there yet; leave existing rows untouched."""
    if not rows:
        return
    dialect = postgresql if is_postgresql(session) else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    await session.execute(statement, list(rows))  # executemany: batched, from one cached statement


def advisory_key(*parts: str) -> int:
    """A signed 64-bit key for pg_advisory_xact_lock, derived from the parts."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@asynccontextmanager
async def exclusively(engine: AsyncEngine, *parts: str) -> AsyncIterator[None]:
    """Run the body in one process at a time across the service's workers (a session-level
    advisory lock on PostgreSQL; SQLite is served by a single worker).
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    key = advisory_key(*parts)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        await connection.commit()
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            await connection.commit()


class LockTimeout(Exception):
    """Another transaction held the key for longer than the wait allowed."""


async def lock_key(session: AsyncSession, key: int, wait_ms: int) -> None:
    """Take a transaction-scoped lock on `key` (PostgreSQL), waiting at most `wait_ms`.

    On SQLite every write transaction already holds the database's write lock (BEGIN IMMEDIATE),
    which serializes the same requests this lock does.
    """
    if not is_postgresql(session):
        return
    acquired = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})).scalar_one()
    if acquired:
        return
    await session.execute(text(f"SET LOCAL lock_timeout = {int(wait_ms)}"))
    try:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    except Exception as error:  # asyncpg's LockNotAvailableError arrives wrapped by SQLAlchemy
        if "lock timeout" in str(error) or "LockNotAvailable" in type(getattr(error, "orig", error)).__name__:
            raise LockTimeout from error
        raise
    await session.execute(text("SET LOCAL lock_timeout = 0"))


async def upsert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert the rows, or update every other column of the row with the same `keys`.

    The row's id is kept when it exists: ids never change once given.
    """
    if not rows:
        return
    dialect = postgresql if is_postgresql(session) else sqlite
    changing = [name for name in rows[0] if name not in keys and name != "id"]
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in changing}
    )
    await session.execute(statement, list(rows))
