"""The service's refusals. Business refusals are data: the GraphQL layer renders a ServiceError
as a typed error with its stable code and the field it concerns.

    ServiceError        a request the service refuses: `code` (adjudication.ErrorCode), `field`,
                        `message`, and `details` (ids a client may act on)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from adjudication import ErrorCode, InputError

RETRYABLE = frozenset({ErrorCode.IN_PROGRESS})


class ServiceError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str,
        field: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field
        self.details: Mapping[str, str] = MappingProxyType(dict(details or {}))

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE

    @classmethod
    def from_input(cls, error: InputError, prefix: str = "") -> ServiceError:
        field = f"{prefix}.{error.field}" if prefix and error.field else (error.field or prefix or None)
        return cls(error.code, error.message, field)
