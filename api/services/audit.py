"""The audit log: every write (inside its own transaction) and every denied attempt (alone)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Principal
from api.db import models
from api.errors import ServiceError
from api.ids import uuid7


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a verified principal, or what an unauthenticated request claimed to be."""

    token_id: str | None
    subject: str | None = None
    role: str | None = None
    org: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.token_id, principal.subject, principal.role.value, principal.org)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    actor: Actor
    action: str
    outcome: str
    at: datetime
    target: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "id": uuid7(),
            "occurred_at": self.at,
            "token_id": self.actor.token_id,
            "subject": self.actor.subject,
            "role": self.actor.role,
            "org": self.actor.org,
            "action": self.action,
            "target": None if self.target is None else self.target[:200],
            "outcome": self.outcome,
            "detail": dict(self.detail),
        }


async def append(session: AsyncSession, *records: AuditRecord) -> None:
    """Within the caller's transaction: the entries commit, or not, with the write they record."""
    if records:
        await session.execute(models.AuditEntry.__table__.insert().values([record.row() for record in records]))


async def append_alone(sessions: async_sessionmaker[AsyncSession], *records: AuditRecord) -> None:
    """In a transaction of their own: a refusal, or a read, is recorded though nothing else was
    written. Never called while the same task holds a write transaction (SQLite has one writer).
    """
    if not records:
        return
    async with sessions() as session:
        await append(session, *records)
        await session.commit()


async def refuse(
    sessions: async_sessionmaker[AsyncSession],
    principal: Principal,
    action: str,
    error: ServiceError,
    at: datetime,
    target: str | None = None,
) -> NoReturn:
    """Record a denied attempt on its own, then refuse it."""
    detail = {"code": error.code.value, "field": error.field}
    await append_alone(sessions, AuditRecord(Actor.of(principal), action, "denied", at, target, detail))
    raise error
