"""The audit log: every write (inside its own transaction) and every denied attempt (alone).

Every entry is authenticated when it is written: `append` adds an HMAC over the entry's id and
content (`audit_chain.entry_message`) under the keyring's active audit MAC key, naming the key.
The database never holds that key, so a row inserted with the database's rights alone cannot
carry a valid MAC, and the sealer refuses to chain it. `append` is the only writer of
`audit_log`; it finds the keyring on the session, put there once by `bind`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import Principal
from api.crypto.keyring import MasterKeyProvider
from api.db import models
from api.db.statements import is_postgresql
from api.errors import ServiceError
from api.ids import uuid7
from api.services.audit_chain import entry_message

KEYRING = "audit_keyring"
"""Where a bound session carries the keyring that authenticates its audit entries."""


def bind(sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, *, probe: bool = True) -> None:
    """Every session of `sessions` authenticates the audit entries it writes with `keyring`.

    Called once where the sessions and the keyring are made (the app's lifespan, the command
    line). With `probe`, a MAC is asked for now, so that a keyring without an audit MAC key
    stops the service at start-up rather than at its first write.
    """
    if probe:
        keyring.audit_mac(b"settle-audit-probe")
    sessions.configure(info={KEYRING: keyring})


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

    def row(self, keyring: MasterKeyProvider) -> dict[str, Any]:
        """The row as stored, with its MAC. Values are put in the form they read back in (a UTC
        moment, JSON as it round-trips), so that the MAC verifies on what the database returns.
        """
        content = {
            "id": uuid7(),
            "occurred_at": self.at.astimezone(UTC),
            "token_id": self.actor.token_id,
            "subject": self.actor.subject,
            "role": self.actor.role,
            "org": self.actor.org,
            "action": self.action,
            "target": None if self.target is None else self.target[:200],
            "outcome": self.outcome,
            "detail": json.loads(json.dumps(dict(self.detail))),
        }
        mac_key_id, mac = keyring.audit_mac(entry_message(content))
        return content | {"mac_key_id": mac_key_id, "mac": mac}


def _keyring(session: AsyncSession) -> MasterKeyProvider:
    keyring: MasterKeyProvider | None = session.info.get(KEYRING)
    if keyring is None:
        raise RuntimeError("audit entries are written only through sessions bound to the keyring (audit.bind)")
    return keyring


async def append(session: AsyncSession, *records: AuditRecord) -> None:
    """Within the caller's transaction: the entries commit, or not, with the write they record.

    On SQLite the entries are numbered here: every write transaction holds the database's write
    lock from its start (BEGIN IMMEDIATE), so numbers follow the commit order. On PostgreSQL the
    identity column numbers them and a trigger stamps the writing transaction.
    """
    if not records:
        return
    keyring = _keyring(session)
    rows = [record.row(keyring) for record in records]
    if not is_postgresql(session):
        log = models.AuditEntry.__table__
        last = (await session.execute(select(func.coalesce(func.max(log.c.position), 0)))).scalar_one()
        for offset, row in enumerate(rows, start=1):
            row["position"] = last + offset
    await session.execute(insert(models.AuditEntry).values(rows))


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
