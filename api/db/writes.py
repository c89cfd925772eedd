"""Staged writes: the rows of one table, written by one statement.

A repository stages what its use case writes (`Write`); the unit of work sends the staged writes
together. On PostgreSQL each becomes one data-modifying statement over `unnest` of one array per
column (`INSERT INTO t (a, b) SELECT * FROM unnest($1::uuid[], $2::int8[])`), and all of them ride
as CTEs with the next statement, so that writing costs no round trip of its own. On SQLite each is
one executemany through SQLAlchemy Core. The SQL is derived once per shape from the table's
columns, so both databases write the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Table,
    Uuid,
    bindparam,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator, TypeEngine


class Mode(Enum):
    INSERT = "insert"
    INSERT_MISSING = "insert missing"
    """Rows whose `key` is taken already are left as they are (ON CONFLICT DO NOTHING)."""
    UPDATE = "update"
    """Set `columns[1:]` of the row whose id is `columns[0]`."""


@dataclass(frozen=True, slots=True)
class Write:
    """Rows of `table`, each a tuple in the order of `columns`, written by one statement."""

    table: Table
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    mode: Mode = Mode.INSERT
    key: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, table: Table, rows: Sequence[Mapping[str, Any]], mode: Mode = Mode.INSERT, key: tuple[str, ...] = ()
    ) -> Write | None:
        """The rows given as mappings (all with the same keys); None when there are none."""
        if not rows:
            return None
        columns = tuple(rows[0])
        return cls(table, columns, tuple(tuple(row[c] for c in columns) for row in rows), mode, key)

    @classmethod
    def updates(cls, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> Write | None:
        """Set `columns` of rows by id: each row is (id, *values)."""
        if not rows:
            return None
        return cls(table, ("id", *columns), tuple(rows), Mode.UPDATE)

    @property
    def shape(self) -> tuple[str, tuple[str, ...], Mode, tuple[str, ...]]:
        return self.table.name, self.columns, self.mode, self.key

    def arrays(self) -> list[list[Any]]:
        """PostgreSQL's parameters: one array per column (JSON columns as text)."""
        json_columns = _json_columns(self.table.name, self.columns, self.table)
        arrays = [list(values) for values in zip(*self.rows, strict=True)]
        for index in json_columns:
            arrays[index] = [None if value is None else json.dumps(value) for value in arrays[index]]
        return arrays

    async def execute(self, session: AsyncSession) -> None:
        """SQLite (or any database through Core): one executemany."""
        table = self.table
        if self.mode is Mode.UPDATE:
            values: dict[str, Any] = {column: bindparam(f"new_{column}") for column in self.columns[1:]}
            statement = update(table).where(table.c.id == bindparam("row_id")).values(values)
            parameters = [
                {"row_id": row[0], **{f"new_{c}": v for c, v in zip(self.columns[1:], row[1:], strict=True)}}
                for row in self.rows
            ]
            await session.execute(statement.execution_options(synchronize_session=False), parameters)
            return
        rows = [dict(zip(self.columns, row, strict=True)) for row in self.rows]
        if self.mode is Mode.INSERT_MISSING:
            await session.execute(sqlite.insert(table).on_conflict_do_nothing(index_elements=list(self.key)), rows)
        else:
            await session.execute(table.insert(), rows)


def postgresql_statement(writes: Sequence[Write], main: str, first_parameter: int) -> str:
    """`main` with `writes` riding as data-modifying CTEs, their parameters numbered from
    `first_parameter` on (`main` keeps its own $1...). If `main` has a WITH of its own, the
    writes join it.
    """
    return _compose(tuple(write.shape for write in writes), main, first_parameter, tuple(w.table for w in writes))


@lru_cache(maxsize=512)
def _compose(shapes: tuple[Any, ...], main: str, first: int, tables: tuple[Table, ...]) -> str:
    ctes = []
    parameter = first
    for number, ((_, columns, mode, key), table) in enumerate(zip(shapes, tables, strict=True)):
        ctes.append(f"staged_{number} AS ({_sql(table, columns, mode, key, parameter)})")
        parameter += len(columns)
    head = "WITH " + ", ".join(ctes)
    stripped = main.lstrip()
    if stripped[:5].upper() == "WITH ":
        return f"{head}, {stripped[5:]}"
    return f"{head} {stripped}"


def _sql(table: Table, columns: tuple[str, ...], mode: Mode, key: tuple[str, ...], first: int) -> str:
    arrays = ", ".join(f"${first + i}::{pg_type(table.c[c].type)}[]" for i, c in enumerate(columns))
    if mode is Mode.UPDATE:
        assignments = ", ".join(f"{c} = v.{c}" for c in columns[1:])
        return (
            f"UPDATE {table.name} AS t SET {assignments} FROM unnest({arrays}) AS v({', '.join(columns)}) "
            "WHERE t.id = v.id"
        )
    insert = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
    if mode is Mode.INSERT_MISSING:
        return f"{insert} ON CONFLICT ({', '.join(key)}) DO NOTHING"
    return insert


@lru_cache(maxsize=256)
def _json_columns(name: str, columns: tuple[str, ...], table: Table) -> tuple[int, ...]:
    return tuple(i for i, c in enumerate(columns) if isinstance(_base_type(table.c[c].type), JSON))


def _base_type(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


_PG_TYPES: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (Uuid, "uuid"),
    (BigInteger, "int8"),
    (Integer, "int4"),
    (Boolean, "bool"),
    (DateTime, "timestamptz"),
    (Date, "date"),
    (JSON, "json"),
    (LargeBinary, "bytea"),
    (String, "text"),
)


def pg_type(kind: TypeEngine[Any]) -> str:
    """The PostgreSQL type a column's values are sent as."""
    base = _base_type(kind)
    for python_type, name in _PG_TYPES:
        if isinstance(base, python_type):
            return name
    raise TypeError(f"no PostgreSQL array type for {kind!r}")
