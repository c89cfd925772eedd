"""What a failure inside a resolver tells the caller, and what it leaves in the log.

    a typed refusal (ServiceError)      its code, field and message; retryable when it says so
    an unreadable value (DecryptionError)  VALUE_UNREADABLE or KEY_DESTROYED: crypto-shredding's
                                         explicit answer
    a transient database failure        RETRYABLE_FAILURE, retryable: the connection dropped, a
                                         serialization failure or deadlock, the pool ran dry, the
                                         SQLite file was locked
    anything else                       INTERNAL_ERROR, masked: its message may carry SQL and values

The log gets the failure's classes and frames (`api.logs.describe`), never its message: a database
error renders its SQL parameters, a coercion error quotes the value it refused.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass

from sqlalchemy import exc as sa

from api import logs
from api.crypto.envelope import DecryptionError
from api.errors import ServiceError

log = logs.get_logger("settle.failures")

INTERNAL_MESSAGE = "internal error: the event is logged"
RETRYABLE_MESSAGE = "the database is briefly unavailable or the request collided with another; send it again"

_TRANSIENT_DRIVER_ERRORS = frozenset(
    {
        # asyncpg
        "SerializationError",
        "DeadlockDetectedError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "TooManyConnectionsError",
        "AdminShutdownError",
        "CrashShutdownError",
        "InterfaceError",
        "LockNotAvailableError",
        "QueryCanceledError",
    }
)


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str
    retryable: bool = False
    field: str | None = None

    def extensions(self) -> dict[str, object]:
        extensions: dict[str, object] = {"code": self.code, "retryable": self.retryable}
        if self.field is not None:
            extensions["field"] = self.field
        return extensions


def transient(error: BaseException) -> bool:
    """A failure that the same request, sent again, may not meet."""
    if isinstance(error, sa.DBAPIError):
        if error.connection_invalidated:
            return True
        driver = error.orig
        return driver is not None and _driver_transient(driver)
    if isinstance(error, sa.TimeoutError | sa.DisconnectionError | ConnectionError | asyncio.TimeoutError):
        return True
    return _driver_transient(error)


def _driver_transient(error: BaseException) -> bool:
    causes = [error] if error.__cause__ is None else [error, error.__cause__]
    for cause in causes:
        if {cls.__name__ for cls in type(cause).__mro__} & _TRANSIENT_DRIVER_ERRORS:
            return True
        if isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause):
            return True  # SQLite's one writer was busy for longer than the timeout
    return False


def describe(error: BaseException) -> Failure:
    """The caller's view of `error`; logs what an operator needs, and nothing the caller sent."""
    if isinstance(error, ServiceError):
        return Failure(error.code.value, error.message, error.retryable, error.field)
    if isinstance(error, DecryptionError):
        return Failure(error.extensions["code"], str(error))
    if transient(error):
        log.warning("transient failure", **logs.describe(error))
        return Failure("RETRYABLE_FAILURE", RETRYABLE_MESSAGE, retryable=True)
    log.error("unexpected error", **logs.describe(error))
    return Failure("INTERNAL_ERROR", INTERNAL_MESSAGE)
