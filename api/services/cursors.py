"""Opaque cursors for keyset pagination: a row's (time-ordered) id, labelled with its kind."""

from __future__ import annotations

import base64
import uuid

from adjudication import ErrorCode
from api.errors import ServiceError


def encode(kind: str, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{kind}:".encode() + row_id.bytes).decode()


def decode(kind: str, cursor: str) -> uuid.UUID:
    """The id a cursor of `kind` carries; anything else is refused (field `after`)."""
    label = f"{kind}:".encode()
    try:
        raw = base64.urlsafe_b64decode(cursor.encode())
        if not raw.startswith(label):
            raise ValueError
        return uuid.UUID(bytes=raw.removeprefix(label))
    except ValueError:
        raise ServiceError(ErrorCode.INVALID_FIELD, "not a cursor this service gave out", "after") from None
