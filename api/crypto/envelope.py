"""Envelope encryption of fields.

Each value is encrypted under a data key; each data key is wrapped by its tenant's master key in
the keyring and stored, wrapped, in `data_keys`. A ciphertext is

    version (1 byte) | suite (1 byte) | data key id (16 bytes) | nonce (12 bytes) | sealed value + tag

and its associated data binds it to the header and to its place: table, column, row id (chosen
by the application) and tenant. A ciphertext copied to another row, column or tenant fails to
decrypt with `DecryptionError`; it never yields a wrong value. Rewrapping a data key under a new
master key never touches the ciphertexts: they name the data key, not the master key.

Plaintexts are padded (amounts to 8 bytes, text to a multiple of 32 bytes) so that a
ciphertext's length does not tell how large an amount or how long a name is.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from api.crypto.keyring import KeyDestroyed, KeyringError, KeyState, MasterKeyProvider
from api.crypto.suites import NONCE_BYTES, Suite, keyed_hash, open_, require, seal
from api.db import models
from api.ids import uuid7
from api.tables import table_of

VERSION = 1
HEADER_BYTES = 2 + 16
TEXT_BLOCK = 32
DEFAULT_VALUES_PER_DATA_KEY = 1_000_000  # far below GCM's 2**32 random-nonce limit


class DecryptionError(Exception):
    """A ciphertext that cannot be read here: moved from another row, column or tenant, altered,
    or under a data key that is unknown. Never answered with a wrong value. (`extensions` gives
    the API a stable code for it.)
    """

    extensions: ClassVar[dict[str, str]] = {"code": "VALUE_UNREADABLE"}


class ValueUnreadable(DecryptionError):
    """The master key under which this value's data key was wrapped was destroyed."""

    extensions: ClassVar[dict[str, str]] = {"code": "KEY_DESTROYED"}


@dataclass(frozen=True, slots=True)
class Place:
    """Where a value lives: what its ciphertext is bound to."""

    table: str
    column: str
    row_id: uuid.UUID
    tenant: str

    def associated(self, header: bytes) -> bytes:
        return header + f"|{self.table}|{self.column}|{self.row_id}|{self.tenant}".encode()


@dataclass(slots=True)
class _DataKey:
    id: uuid.UUID
    tenant: str
    master_key_id: str
    suite: Suite
    material: bytes
    uses: int = 0


def _wrap_associated(data_key_id: uuid.UUID, tenant: str) -> bytes:
    return f"settle-data-key|{data_key_id}|{tenant}".encode()


def pad_text(value: str) -> bytes:
    """UTF-8, padded with NUL bytes to a whole number of blocks (at least one)."""
    raw = value.encode()
    if b"\x00" in raw:
        raise ValueError("text to encrypt contains a NUL character")
    blocks = max(1, -(-len(raw) // TEXT_BLOCK))
    return raw.ljust(blocks * TEXT_BLOCK, b"\x00")


def unpad_text(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode()


PENDING = "field_cipher.pending_data_keys"


@dataclass
class FieldCipher:
    """Encrypts and decrypts fields for the service.

    A value is encrypted inside the transaction that stores it (`session`). When that needs a new
    data key, the key's wrapped row is written in the same transaction, and the key is offered to
    other transactions only once this one has committed: a ciphertext can never outlive its key.
    Data keys are cached in memory after their first unwrap; a cached key whose master key has
    been destroyed is dropped on its next use.
    """

    keyring: MasterKeyProvider
    sessions: async_sessionmaker[AsyncSession]
    values_per_data_key: int = DEFAULT_VALUES_PER_DATA_KEY
    _active: dict[str, _DataKey] = field(default_factory=dict)
    _known: dict[uuid.UUID, _DataKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(self.keyring.suite)
        self._index_key = self.keyring.index_key()

    @property
    def suite(self) -> Suite:
        return self.keyring.suite

    # --- values ----------------------------------------------------------------------------

    async def encrypt(self, session: AsyncSession, place: Place, plaintext: bytes) -> bytes:
        key = await self._key_for_new_values(session, place.tenant)
        header = bytes((VERSION, key.suite)) + key.id.bytes
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + seal(key.suite, key.material, nonce, plaintext, place.associated(header))

    async def decrypt(self, place: Place, ciphertext: bytes, session: AsyncSession | None = None) -> bytes:
        """The plaintext. Looks an uncached data key up through `session` when one is given (a
        transaction in progress), otherwise through a short read of its own.
        """
        if len(ciphertext) < HEADER_BYTES + NONCE_BYTES or ciphertext[0] != VERSION:
            raise DecryptionError(f"{place.table}.{place.column}: not a ciphertext of this service")
        header, nonce, sealed = (
            ciphertext[:HEADER_BYTES],
            ciphertext[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES],
            ciphertext[HEADER_BYTES + NONCE_BYTES :],
        )
        key = await self._key(uuid.UUID(bytes=header[2:HEADER_BYTES]), session)
        if header[1] != key.suite:
            raise DecryptionError(f"{place.table}.{place.column}: the suite byte does not match its data key")
        try:
            return open_(key.suite, key.material, nonce, sealed, place.associated(header))
        except InvalidTag:
            raise DecryptionError(
                f"{place.table}.{place.column} of row {place.row_id}: the ciphertext does not belong here "
                "(moved from another row, column or tenant, or altered)"
            ) from None

    async def encrypt_amount(self, session: AsyncSession, place: Place, amount_fen: int) -> bytes:
        return await self.encrypt(session, place, amount_fen.to_bytes(8, "big", signed=True))

    async def decrypt_amount(self, place: Place, ciphertext: bytes, session: AsyncSession | None = None) -> int:
        return int.from_bytes(await self.decrypt(place, ciphertext, session), "big", signed=True)

    async def encrypt_text(self, session: AsyncSession, place: Place, value: str) -> bytes:
        return await self.encrypt(session, place, pad_text(value))

    async def decrypt_text(self, place: Place, ciphertext: bytes, session: AsyncSession | None = None) -> str:
        return unpad_text(await self.decrypt(place, ciphertext, session))

    # --- search and digests ----------------------------------------------------------------

    def blind_index(self, purpose: str, value: str) -> str:
        """A keyed hash for equality search: the same value always gives the same index, and
        nobody without the index key can compute or invert it.
        """
        return keyed_hash(self.suite, self._index_key, f"index|{purpose}|{value}".encode())

    def digest(self, content: bytes) -> str:
        """A keyed digest: tells identical contents apart without letting anyone test guesses."""
        return keyed_hash(self.suite, self._index_key, b"digest|" + content)

    # --- data keys -------------------------------------------------------------------------

    def _usable(self, key: _DataKey | None, master_key_id: str) -> bool:
        return key is not None and key.master_key_id == master_key_id and key.uses < self.values_per_data_key

    async def _key_for_new_values(self, session: AsyncSession, tenant: str) -> _DataKey:
        master = self.keyring.active(tenant)
        if master is None:
            raise KeyringError(
                f"the keyring has no active master key for {tenant}: run `settle keys rotate --tenant {tenant}`"
            )
        pending: dict[str, _DataKey] = session.info.setdefault(PENDING, {})
        key = pending.get(tenant) or self._active.get(tenant)
        if key is None or not self._usable(key, master.key_id):
            key = await self._new_data_key(session, tenant, master.key_id)
            if not pending:
                event.listen(session.sync_session, "after_commit", self._promote, once=True)
            pending[tenant] = key
        key.uses += 1
        return key

    def _promote(self, sync_session: Session) -> None:
        """After a commit, the data keys it stored may serve other transactions too."""
        for tenant, key in sync_session.info.pop(PENDING, {}).items():
            self._known[key.id] = key
            self._active[tenant] = key

    async def _new_data_key(self, session: AsyncSession, tenant: str, master_key_id: str) -> _DataKey:
        key_id = uuid7()
        material = os.urandom(self.suite.key_bytes)
        wrapped = self.keyring.wrap(master_key_id, material, _wrap_associated(key_id, tenant))
        await session.execute(
            table_of(models.DataKey)
            .insert()
            .values(
                id=key_id,
                tenant=tenant,
                master_key_id=master_key_id,
                suite=int(self.suite),
                wrapped=wrapped,
                created_at=datetime.now(UTC),
                rewrapped_at=None,
            )
        )
        return _DataKey(key_id, tenant, master_key_id, self.suite, material)

    async def _key(self, key_id: uuid.UUID, session: AsyncSession | None) -> _DataKey:
        key = self._known.get(key_id)
        if key is None and session is not None:
            key = next((k for k in session.info.get(PENDING, {}).values() if k.id == key_id), None)
        if key is not None:
            if self.keyring.state(key.master_key_id) is KeyState.DESTROYED:
                self._forget(key_id)
                raise ValueUnreadable(f"data key {key_id}: its master key {key.master_key_id} was destroyed")
            return key
        table = models.DataKey.__table__
        statement = select(table).where(table.c.id == key_id)
        if session is not None:
            row = (await session.execute(statement)).mappings().first()
        else:
            async with self.sessions() as own:
                row = (await own.execute(statement)).mappings().first()
        if row is None:
            raise DecryptionError(f"data key {key_id} is unknown")
        try:
            material = self.keyring.unwrap(
                row["master_key_id"], row["wrapped"], _wrap_associated(key_id, row["tenant"])
            )
        except KeyDestroyed as error:
            raise ValueUnreadable(str(error)) from None
        key = _DataKey(key_id, row["tenant"], row["master_key_id"], Suite(row["suite"]), material)
        self._known[key_id] = key
        return key

    def _forget(self, key_id: uuid.UUID) -> None:
        key = self._known.pop(key_id, None)
        if key is not None and self._active.get(key.tenant) is key:
            del self._active[key.tenant]
