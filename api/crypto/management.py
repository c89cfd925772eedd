"""Opening the keyring from the settings, and the key life-cycle behind `settle keys`:

rotate [--tenant T]   a new active master key per tenant; new data keys are wrapped by it
rewrap [--batch N]    re-wrap data keys under their tenant's active master key, N per short
                      transaction, while the service keeps running (ciphertexts untouched)
retire KEY_ID         refused while any data key is still wrapped by KEY_ID
destroy KEY_ID        crypto-shredding: everything under KEY_ID becomes unreadable
rotate-audit          new audit MAC and checkpoint-signing keys; the old ones are kept, verify-only,
                      for as long as the log: each entry and checkpoint names the key that vouches for it
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.crypto.envelope import _wrap_associated
from api.crypto.keyring import AuditKey, FileKeyring, KeyringError, KeyState, MasterKey, MasterKeyProvider
from api.crypto.suites import Suite, require
from api.db import models
from api.settings import Settings
from api.tables import table_of


def open_keyring(settings: Settings) -> MasterKeyProvider:
    """The configured provider. The file keyring generates keys on first use in development only."""
    suite = Suite.from_label(settings.cipher_suite)
    require(suite)
    if settings.keyring != "file":
        module, _, factory = settings.keyring.partition(":")
        provider: MasterKeyProvider = getattr(importlib.import_module(module), factory)(settings)
        if provider.suite is not suite:
            raise KeyringError(f"the keyring provider uses {provider.suite.label}, the settings say {suite.label}")
        return provider
    directory = settings.keyring_dir
    if directory is None:
        if not settings.development:
            raise KeyringError("production needs SETTLE_KEYRING_DIR (a mounted secret folder) or a KMS provider")
        directory = settings.keys_dir / "dev" / "keyring"
    return FileKeyring(directory, suite, create_missing=settings.development)


async def tenants(sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider) -> list[str]:
    """Every tenant that has a master key or a data key."""
    async with sessions() as session:
        stored = set((await session.execute(select(models.DataKey.tenant).distinct())).scalars())
    return sorted(stored | {key.tenant for key in keyring.master_keys()})


def rotate(keyring: MasterKeyProvider, tenants: Sequence[str]) -> list[MasterKey]:
    return [keyring.create(tenant) for tenant in tenants]


def rotate_audit(keyring: MasterKeyProvider) -> list[AuditKey]:
    """New active audit keys. Nothing is rewritten: old entries keep their MACs, old checkpoints
    their signatures, each naming its key, which stays in the keyring to verify them.
    """
    return keyring.rotate_audit_keys()


async def rewrap(sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, batch: int = 500) -> int:
    """Re-wrap every data key not under its tenant's active master key; returns how many.

    Each batch is one short transaction that locks only its data-key rows (FOR UPDATE, SKIP
    LOCKED on PostgreSQL), so settlements and concurrent rewrappers carry on.
    """
    table = table_of(models.DataKey)
    active = {key.tenant: key.key_id for key in keyring.master_keys() if key.state is KeyState.ACTIVE}
    done = 0
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(table.c.id, table.c.tenant, table.c.master_key_id, table.c.wrapped)
                    .where(table.c.tenant.in_(sorted(active)), table.c.master_key_id.not_in(sorted(active.values())))
                    .order_by(table.c.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            stale = [(row, active[row.tenant]) for row in rows]
            if not stale:
                return done
            now = datetime.now(UTC)
            changes = []
            for row, active_id in stale:
                associated = _wrap_associated(row.id, row.tenant)
                material = keyring.unwrap(row.master_key_id, row.wrapped, associated)
                changes.append(
                    {
                        "key": row.id,
                        "master": active_id,
                        "blob": keyring.wrap(active_id, material, associated),
                        "at": now,
                    }
                )
            await session.execute(
                update(table)
                .where(table.c.id == bindparam("key"))
                .values(master_key_id=bindparam("master"), wrapped=bindparam("blob"), rewrapped_at=bindparam("at"))
                .execution_options(synchronize_session=False),
                changes,
            )
            await session.commit()
            done += len(stale)


async def dependants(sessions: async_sessionmaker[AsyncSession], key_id: str) -> int:
    table = models.DataKey.__table__
    async with sessions() as session:
        count: int = (
            await session.execute(select(func.count()).select_from(table).where(table.c.master_key_id == key_id))
        ).scalar_one()
        return count


async def retire(sessions: async_sessionmaker[AsyncSession], keyring: MasterKeyProvider, key_id: str) -> None:
    if keyring.state(key_id) is None:
        raise KeyringError(f"master key {key_id} is not in the keyring")
    if keyring.state(key_id) is KeyState.ACTIVE:
        raise KeyringError(f"master key {key_id} is its tenant's active key: rotate first")
    remaining = await dependants(sessions, key_id)
    if remaining:
        raise KeyringError(f"master key {key_id} still wraps {remaining} data keys: run `settle keys rewrap` first")
    keyring.set_state(key_id, KeyState.RETIRED)


def destroy(keyring: MasterKeyProvider, key_id: str) -> None:
    if keyring.state(key_id) is None:
        raise KeyringError(f"master key {key_id} is not in the keyring")
    keyring.destroy(key_id)
