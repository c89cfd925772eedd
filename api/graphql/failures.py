"""What a failure inside a resolver tells the caller, and what it leaves in the log.

    a typed refusal (ServiceError)      its code, field and message; retryable when it says so
    an unreadable value (DecryptionError)  VALUE_UNREADABLE or KEY_DESTROYED: crypto-shredding's
                                         explicit answer
    a transient database failure        RETRYABLE_FAILURE, retryable: the connection dropped, a
                                         serialization failure or deadlock, the pool ran dry, the
                                         SQLite file was locked
    anything else                       INTERNAL_ERROR, masked: its message may carry SQL and values

The log gets the failure's class names and where it was raised, never its message: a database
error renders its SQL parameters, a coercion error quotes the value it refused.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import traceback
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa

from api.crypto.envelope import DecryptionError
from api.errors import ServiceError

log = logging.getLogger("settle.failures")

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

    def extensions(self) -> dict[str, Any]:
        extensions: dict[str, Any] = {"code": self.code, "retryable": self.retryable}
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
        log.warning("transient failure: %s", chain(error))
        return Failure("RETRYABLE_FAILURE", RETRYABLE_MESSAGE, retryable=True)
    log.error("unexpected failure: %s at %s", chain(error), origin(error))
    return Failure("INTERNAL_ERROR", INTERNAL_MESSAGE)


def chain(error: BaseException) -> str:
    """The class names of an exception and its causes (`DBAPIError <- UniqueViolationError`)."""
    names = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.append(type(current).__name__)
        current = current.__cause__ or current.__context__
    return " <- ".join(names)


def origin(error: BaseException) -> str:
    """Where the exception was raised (file and line of the innermost frame): no values."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 2)[-1]}:{last.lineno} in {last.name}"
