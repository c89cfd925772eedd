"""The service's logs: one JSON object per line on stderr, from structlog and from the standard
library's loggers alike (ours, uvicorn's, SQLAlchemy's), so that a log shipper reads every line.

What is never written: query text, variables, SQL and its parameters, ID numbers, names, and any
exception's message. An exception is logged as its classes (the chain of causes) and the frames
it passed through (file, line, function); Python's frames carry no values, but messages do (a
SQLAlchemy error renders its parameters, a coercion error quotes the input), so they are dropped
here, for every logger, whoever logged the exception.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from api.settings import PROJECT_ROOT, LogFormat, Settings

FRAMES_MAX = 30
"""Frames kept of an exception's traceback (the innermost ones)."""

VALUE_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "httpx", "httpcore")
"""Libraries whose INFO and DEBUG lines carry SQL parameters or URLs with query strings: held at
WARNING whatever SETTLE_LOG_LEVEL says."""
LEADING = ("at", "level", "event", "request_id")

_HANDLER_MARK = "_settle_handler"


def _short(filename: str) -> str:
    """A frame's file, without the machine's folders: `api/app.py`, `sqlalchemy/engine/base.py`."""
    path = Path(filename)
    parts = path.parts
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    if path.is_relative_to(PROJECT_ROOT):
        return path.relative_to(PROJECT_ROOT).as_posix()
    return path.name


def _name(kind: type[BaseException]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")


def _sqlstate(error: BaseException) -> str | None:
    """The database's error class (e.g. 23505), when the driver says it: a code, never a value."""
    original = getattr(error, "orig", None)
    for candidate in (original, getattr(original, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str) and code.isalnum() and len(code) <= 5:
            return code
    return None


def describe(error: BaseException) -> dict[str, Any]:
    """An exception as log fields that cannot hold a value: its class, the classes of its causes
    (a SQLAlchemy error names its driver's error class: `DBAPIError(asyncpg.UniqueViolationError)`),
    the SQLSTATE when there is one, and where it happened. Never `str(error)`.
    """
    chain: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(chain) < 8:
        seen.add(id(current))
        name = _name(type(current))
        original = getattr(current, "orig", None)
        if isinstance(original, BaseException):
            name += f"({_name(type(original))})"
        chain.append(name)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    fields: dict[str, Any] = {"error": chain[0], "causes": chain[1:] or None, "frames": _frames(error.__traceback__)}
    sqlstate = _sqlstate(error)
    if sqlstate is not None:
        fields["sqlstate"] = sqlstate
    return {key: value for key, value in fields.items() if value is not None}


def _frames(tb: TracebackType | None) -> list[str]:
    return [f"{_short(frame.filename)}:{frame.lineno} {frame.name}" for frame in traceback.extract_tb(tb)][-FRAMES_MAX:]


def sanitize_exception(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Replace `exc_info` (from `log.exception`, `exc_info=True`, a stdlib record) with `describe`,
    and drop `stack_info`: no exception message reaches a renderer.
    """
    event.pop("stack_info", None)
    exc_info = event.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    error: BaseException | None = None
    if isinstance(exc_info, BaseException):
        error = exc_info
    elif isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        error = exc_info[1]
    if error is not None:
        event.update(describe(error))
    return event


def _leading_keys_first(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """When, how bad, what and which request first: a person reading the line finds them there."""
    leading: EventDict = {key: event.pop(key) for key in LEADING if key in event}
    leading.update(event)
    return leading


def _shared() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="at"),
        sanitize_exception,
    ]


def configure_structlog() -> None:
    """structlog's loggers hand their events to the standard library, whose handler renders them
    (so pytest's capture, and any handler an operator adds, sees them too). Idempotent.
    """
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def formatter(log_format: LogFormat = LogFormat.JSON) -> logging.Formatter:
    """The formatter of every line: JSON, or a console rendering for a development terminal."""
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if log_format is LogFormat.CONSOLE
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _leading_keys_first, renderer],
        use_get_message=True,
    )


def install(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Route every log record to `stream` (stderr) through `formatter`; replaces what an earlier
    call installed and leaves other handlers alone (pytest's, an operator's). uvicorn's access
    log is switched off: it prints query strings; the request line of api/http/observability.py
    replaces it.
    """
    configure_structlog()
    logging.raiseExceptions = False  # a handler's own failure would print the exception being handled, message and all
    root = logging.getLogger()
    for handler in [handler for handler in root.handlers if getattr(handler, _HANDLER_MARK, False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in VALUE_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers would print a second, plain line
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    return handler


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
