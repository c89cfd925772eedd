"""The unit of work: one transaction of a use case, and everything that belongs to it.

A service hands `run` its work (an async function of a `UnitOfWork`). The unit of work opens the
session, gives the work its repositories, and at the end writes what the work staged and its
audit entries, and commits; or, when the work refuses (raises a `ServiceError`), rolls back and
writes on their own only the records a refusal leaves (`refuse`: the audit entry of a denied
attempt, the anomaly of a refused sale). Services never open a session themselves.

Lock order. Every writer takes its locks in this one order, so that no two transactions wait on
each other in a cycle:

    1. the idempotency key (institution, serial): a transaction-scoped advisory lock
    2. the person's year totals: accumulators plan by plan, then units received drug by drug
    3. the traceability packages of the claim's codes, code by code
    4. last, the prepayment pools drawn on (or returned to), payer by payer: a pool is shared by
       every claim at its institution, so it is held only for the draw, the payers' shares, the
       ledger entries and the commit (often by the last statement alone: api/db/pools.py).

On PostgreSQL these are row locks taken under READ COMMITTED (rows created when missing, in key
order); a deadlock or a serialization failure all the same makes `run` roll back and run the
whole work again, up to `ATTEMPTS` times (so does a last statement that finds the database moved
from what the work read: `end_with`). On SQLite every write transaction holds the database's
lock from its first statement (BEGIN IMMEDIATE), which orders everything.

Round trips. On PostgreSQL the settle path's statements are SQL text run on the session's own
asyncpg connection (`fetch`): asyncpg prepares each once per connection, and no SQLAlchemy
statement is built per call. Writes are staged (`stage`) and ride with the next statement as
data-modifying CTEs, or with the commit; a statement does not see the writes it carries, so a
read that must see them calls `flush()` first. The first statement of a transaction goes through
SQLAlchemy's connection, which begins the transaction (the BEGIN is one more round trip). On
SQLite, and on the cold paths everywhere, repositories use SQLAlchemy Core (`execute`), which
sends what was staged first. `round_trips` counts every round trip the unit of work makes; the
runtime keeps the tally (`RoundTrips`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from sqlalchemy import exc as sa
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable

from api.crypto.envelope import Place
from api.db import models
from api.db.anomalies import Anomalies, Anomaly
from api.db.base import table_of
from api.db.packages import Packages
from api.db.pools import Pools
from api.db.references import References
from api.db.settlements import Settlements
from api.db.statements import advisory_key
from api.db.writes import Write, postgresql_statement
from api.db.year_totals import YearTotals
from api.errors import ServiceError
from api.services import audit as audit_log
from api.services.audit import AuditRecord

if TYPE_CHECKING:
    from api.services.runtime import Runtime

T = TypeVar("T")

ATTEMPTS = 3
"""Runs of a work that met a deadlock or a serialization failure, the first included."""

_COLLISIONS = frozenset({"DeadlockDetectedError", "SerializationError", "Moved"})
_AUDIT_COLUMNS: tuple[str, ...] = ("id", "occurred_at", "token_id", "subject", "role", "org", "action")
_AUDIT_COLUMNS += ("target", "outcome", "detail", "mac_key_id", "mac")
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1), set_config('plan_cache_mode', 'force_generic_plan', true)"
"""With the key, for the rest of the transaction: each statement planned once per connection.
The settle path's statements plan alike whatever their values (keys, arrays of a few rows), and
PostgreSQL would otherwise plan them anew at each execution (about 0.1 ms of its CPU per
settlement, measured)."""
_LOCK = "SELECT pg_advisory_xact_lock($1)"
_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, true)"
_NOTHING = "SELECT 1"


class Driver(Protocol):
    """What the unit of work uses of asyncpg's connection (which ships no type information)."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


class LockTimeout(Exception):
    """Another transaction held the key for longer than the wait allowed."""


class Moved(Exception):
    """The last statement found the database moved from what the work read (`end_with`): the
    work runs again, as after a deadlock.
    """


@dataclass(slots=True)
class RoundTrips:
    """How many round trips units of work made: the last one's, and in all."""

    units: int = 0
    total: int = 0
    last: int = 0

    def observe(self, round_trips: int) -> None:
        self.units += 1
        self.total += round_trips
        self.last = round_trips


class UnitOfWork:
    """One transaction: its session, its repositories, its staged writes and audit entries."""

    def __init__(self, runtime: Runtime, session: AsyncSession, *, read_only: bool = False, attempt: int = 1) -> None:
        self.runtime = runtime
        self.attempt = attempt
        """1, or more when the work runs again after a collision."""
        self.session = session
        self.read_only = read_only
        self.postgresql = session.get_bind().dialect.name == "postgresql"
        self.round_trips = 0
        self.settlements = Settlements(self)
        self.year_totals = YearTotals(self)
        self.packages = Packages(self)
        self.pools = Pools(self)
        self.anomalies = Anomalies(self)
        self.references = References(self)
        self._staged: list[Write] = []
        self._audit: list[AuditRecord] = []
        self._kept_audit: list[AuditRecord] = []
        self._kept_anomalies: list[Anomaly] = []
        self._connection: AsyncConnection | None = None
        self._driver: Driver | None = None
        self._began = False
        self._last: tuple[str, tuple[Any, ...], int] | None = None

    # --- what the work hands over ----------------------------------------------------------------

    def stage(self, *writes: Write | None) -> None:
        """Rows to write in this transaction: sent with the next statement, or with the commit."""
        self._staged.extend(write for write in writes if write is not None)

    def end_with(self, sql: str, *args: Any, expect: int) -> None:
        """PostgreSQL: send `sql`, the staged writes riding along, as the last statement before
        the commit; its one value must be `expect`, or the work runs again (`Moved`).
        """
        self._last = (sql, args, expect)

    def audit(self, *records: AuditRecord) -> None:
        """Audit entries written with this transaction (after it, alone, when it is read-only)."""
        self._audit.extend(records)

    def refuse(self, error: ServiceError, *records: AuditRecord, anomalies: Sequence[Anomaly] = ()) -> ServiceError:
        """The refusal to raise (`raise uow.refuse(...)`): nothing of this transaction is written
        but `records` and `anomalies`, on their own, once it has rolled back.
        """
        self._kept_audit.extend(records)
        self._kept_anomalies.extend(anomalies)
        return error

    async def lock_serial(self, institution: str, serial: str) -> None:
        """Lock 1 of the order, the idempotency key: waits up to the runtime's `key_wait_ms` for
        a transaction in flight with it, then raises LockTimeout. (On SQLite the database's lock
        serializes such requests already.)
        """
        if not self.postgresql:
            return
        key = advisory_key("settlement", institution, serial)
        ((acquired, _),) = await self.fetch(_TRY_LOCK, key)
        if acquired:
            return
        await self.fetch(_LOCK_TIMEOUT, str(int(self.runtime.key_wait_ms)))
        try:
            await self.fetch(_LOCK, key)
        except Exception as error:
            if _named(error, frozenset({"LockNotAvailableError"})):
                raise LockTimeout from error
            raise
        await self.fetch(_LOCK_TIMEOUT, "0")

    async def seal_amount(self, place: Place, amount_fen: int) -> bytes:
        """`amount_fen` encrypted for `place`'s tenant in this transaction (a new data key, if
        one is needed, is stored with it and offered to others only after the commit).
        """
        self._began = True  # the cipher may write its data key through the session
        return await self.runtime.cipher.encrypt_amount(self.session, place, amount_fen)

    async def open_amount(self, place: Place, ciphertext: bytes) -> int:
        return await self.runtime.cipher.decrypt_amount(place, ciphertext, self.session)

    # --- statements ------------------------------------------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """PostgreSQL: run `sql`, the staged writes riding along; its rows, as tuples."""
        if self._staged:
            staged, self._staged = self._staged, []
            sql = postgresql_statement(staged, sql, len(args) + 1)
            args = (*args, *(array for write in staged for array in write.arrays()))
        self.round_trips += 1
        if self._began or self.read_only:
            driver = self._driver or await self._bind_driver()
            return [tuple(row) for row in await driver.fetch(sql, *args)]
        connection = await self._session_connection()
        self.round_trips += 1  # SQLAlchemy's BEGIN
        self._began = True
        result = await connection.exec_driver_sql(sql, tuple(args))
        return [tuple(row) for row in result]

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        """A SQLAlchemy Core statement, after the staged writes."""
        await self.flush()
        self.round_trips += 1 if self._began or self.read_only else 2
        self._began = True
        return await self.session.execute(statement, parameters)

    async def rows(self, statement: Executable) -> list[tuple[Any, ...]]:
        """A Core statement's rows, as tuples."""
        return [tuple(row) for row in await self.execute(statement)]

    async def flush(self) -> None:
        """Send the staged writes now, for a statement that must see them."""
        if not self._staged:
            return
        if self.postgresql:
            await self.fetch(_NOTHING)
            return
        staged, self._staged = self._staged, []
        for write in staged:
            self.round_trips += 1
            self._began = True
            await write.execute(self.session)

    async def _commit(self) -> None:
        if self.read_only:
            return
        if self._audit and self.postgresql:
            keyring = self.runtime.cipher.keyring
            rows = tuple(tuple(row[c] for c in _AUDIT_COLUMNS) for row in (r.row(keyring) for r in self._audit))
            self.stage(Write(table_of(models.AuditEntry), _AUDIT_COLUMNS, rows))
        elif self._audit:
            await self.flush()
            self.round_trips += 1
            self._began = True
            await audit_log.append(self.session, *self._audit)  # numbers them, under SQLite's one writer
        if self._last is not None:
            sql, args, expect = self._last
            ((value,),) = await self.fetch(sql, *args)
            if value != expect:
                raise Moved
        await self.flush()
        if self._began:
            self.round_trips += 1
            await self.session.commit()

    async def _session_connection(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self.session.connection()
        return self._connection

    async def _bind_driver(self) -> Driver:
        raw = await (await self._session_connection()).get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None, "a pooled connection always has its driver's"
        self._driver = cast(Driver, driver)
        return self._driver


async def run(runtime: Runtime, work: Callable[[UnitOfWork], Awaitable[T]], *, read_only: bool = False) -> T:
    """Run `work` in a unit of work and commit it (see the module's docstring). Read-only work
    commits nothing; its audit entries (the disclosures of what it read) are written after it.
    """
    for attempt in range(1, ATTEMPTS + 1):
        refusal: ServiceError | None = None
        async with runtime.sessions() as session:
            uow = UnitOfWork(runtime, session, read_only=read_only, attempt=attempt)
            try:
                result = await work(uow)
                await uow._commit()
            except ServiceError as error:
                refusal = error
            except Exception as error:
                if attempt < ATTEMPTS and _named(error, _COLLISIONS):
                    continue  # rolled back on leaving the session; the whole work again
                raise
        runtime.round_trips.observe(uow.round_trips)
        if refusal is not None:
            if uow._kept_audit or uow._kept_anomalies:
                await keep(runtime, uow._kept_audit, uow._kept_anomalies)
            raise refusal
        if read_only and uow._audit:
            await keep(runtime, uow._audit, ())
        return result
    raise AssertionError("the last attempt returns or raises")


async def keep(runtime: Runtime, records: Sequence[AuditRecord], anomalies: Sequence[Anomaly]) -> None:
    """Write audit entries and anomalies in a transaction of their own."""

    async def work(uow: UnitOfWork) -> None:
        uow.audit(*records)
        uow.anomalies.add(anomalies)

    await run(runtime, work)


def _named(error: BaseException, names: frozenset[str]) -> bool:
    """Whether `error`, or the driver's error it wraps, is of a class named in `names`."""
    causes: list[BaseException] = [error]
    if isinstance(error, sa.DBAPIError) and error.orig is not None:
        causes.append(error.orig)
    causes += [cause.__cause__ for cause in list(causes) if cause.__cause__ is not None]
    return any({cls.__name__ for cls in type(cause).__mro__} & names for cause in causes)
