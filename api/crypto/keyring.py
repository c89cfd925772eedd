"""The keyring: master keys (key-encryption keys) per tenant, which wrap the data keys.

A master key never leaves its provider: callers ask it to wrap or unwrap a data key. Its life:

    active        wraps new data keys of its tenant (one per tenant at a time)
    decrypt_only  replaced by a newer key (`settle keys rotate`); still unwraps, until rewrapped
    retired       no data key depends on it any more (`settle keys retire` checks); kept, unused
    destroyed     its material is gone (`settle keys destroy`): whatever it wrapped is unreadable

`MasterKeyProvider` is the interface; `FileKeyring` keeps keys as files (one JSON file per key,
mode 0600) in a directory: for development it is the git-ignored `keys/dev/keyring/`, generated
on first use; in production, point it at a mounted secret volume, or plug a KMS or HSM in by
implementing `MasterKeyProvider` (wrap/unwrap inside the KMS, keys created and destroyed there)
and naming its factory in SETTLE_KEYRING (`module:callable`, called with the Settings).

Besides master keys the keyring holds two secrets that never encrypt: the index key, from which
blind indexes (equality search on encrypted fields) and keyed digests are computed, and the
Ed25519 key that signs the audit log's checkpoints.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.crypto.suites import NONCE_BYTES, Suite, open_, seal


class KeyState(StrEnum):
    ACTIVE = "active"
    DECRYPT_ONLY = "decrypt_only"
    RETIRED = "retired"
    DESTROYED = "destroyed"


class KeyringError(Exception):
    """A master key cannot do what was asked; the message says which key and why."""


class KeyDestroyed(KeyringError):
    """Crypto-shredded: what this key wrapped can never be read again."""


@dataclass(frozen=True, slots=True)
class MasterKey:
    key_id: str
    tenant: str
    state: KeyState
    suite: Suite
    created_at: str


class MasterKeyProvider(Protocol):
    """What the envelope needs from a keyring (a file keyring, a KMS, an HSM)."""

    suite: Suite

    def master_keys(self) -> Sequence[MasterKey]: ...

    def active(self, tenant: str) -> MasterKey | None: ...

    def state(self, key_id: str) -> KeyState | None: ...

    def create(self, tenant: str) -> MasterKey: ...

    def wrap(self, key_id: str, data_key: bytes, associated: bytes) -> bytes: ...

    def unwrap(self, key_id: str, wrapped: bytes, associated: bytes) -> bytes: ...

    def set_state(self, key_id: str, state: KeyState) -> None: ...

    def destroy(self, key_id: str) -> None: ...

    def index_key(self) -> bytes: ...

    def sign(self, message: bytes) -> tuple[str, bytes]: ...

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool: ...


_SAFE = re.compile(r"[^A-Za-z0-9]+")


class FileKeyring:
    """Master keys as files in `directory`. `create_missing` lets it make keys on demand (the
    development keyring, generated on first run); otherwise a missing key is an error.
    """

    SCAN_SECONDS = 1.0

    def __init__(self, directory: Path, suite: Suite, *, create_missing: bool) -> None:
        self.directory = directory
        self.suite = suite
        self.create_missing = create_missing
        self._scanned_at = -1.0
        self._keys: dict[str, MasterKey] = {}
        self._material: dict[str, bytes] = {}

    # --- reading ---------------------------------------------------------------------------

    def _scan(self, force: bool = False) -> None:
        """Re-read the directory at most once a second, so that a rotation or a destruction made
        by `settle keys` in another process is seen by a running service within that time.
        """
        now = time.monotonic()
        if not force and now - self._scanned_at < self.SCAN_SECONDS:
            return
        keys: dict[str, MasterKey] = {}
        material: dict[str, bytes] = {}
        if self.directory.exists():
            for path in self.directory.glob("mk-*.json"):
                record = json.loads(path.read_text(encoding="utf-8"))
                key = MasterKey(
                    record["key_id"],
                    record["tenant"],
                    KeyState(record["state"]),
                    Suite(record["suite"]),
                    record["created_at"],
                )
                keys[key.key_id] = key
                if record.get("material"):
                    material[key.key_id] = base64.b64decode(record["material"])
        self._keys, self._material, self._scanned_at = keys, material, now

    def master_keys(self) -> Sequence[MasterKey]:
        self._scan()
        return sorted(self._keys.values(), key=lambda key: (key.tenant, key.created_at, key.key_id))

    def active(self, tenant: str) -> MasterKey | None:
        self._scan()
        found = [key for key in self._keys.values() if key.tenant == tenant and key.state is KeyState.ACTIVE]
        if not found and self.create_missing:
            return self.create(tenant)
        return max(found, key=lambda key: key.created_at) if found else None

    def state(self, key_id: str) -> KeyState | None:
        self._scan()
        key = self._keys.get(key_id)
        return None if key is None else key.state

    # --- wrapping --------------------------------------------------------------------------

    def _usable(self, key_id: str) -> tuple[MasterKey, bytes]:
        self._scan()
        key = self._keys.get(key_id)
        if key is None:
            self._scan(force=True)
            key = self._keys.get(key_id)
        if key is None:
            raise KeyringError(f"master key {key_id} is not in the keyring")
        if key.state is KeyState.DESTROYED:
            raise KeyDestroyed(f"master key {key_id} was destroyed: what it wrapped is unreadable")
        return key, self._material[key_id]

    def wrap(self, key_id: str, data_key: bytes, associated: bytes) -> bytes:
        key, material = self._usable(key_id)
        if key.state is not KeyState.ACTIVE:
            raise KeyringError(f"master key {key_id} is {key.state}: only an active key wraps new data keys")
        nonce = os.urandom(NONCE_BYTES)
        return nonce + seal(key.suite, material, nonce, data_key, associated)

    def unwrap(self, key_id: str, wrapped: bytes, associated: bytes) -> bytes:
        key, material = self._usable(key_id)
        if key.state is KeyState.RETIRED:
            raise KeyringError(f"master key {key_id} is retired")
        try:
            return open_(key.suite, material, wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], associated)
        except InvalidTag:
            raise KeyringError(f"a data key does not unwrap under master key {key_id}: it was altered") from None

    # --- life cycle ------------------------------------------------------------------------

    def create(self, tenant: str) -> MasterKey:
        """A new active key for `tenant`; the tenant's previous active key becomes decrypt-only."""
        self._scan(force=True)
        now = datetime.now(UTC)
        key_id = f"mk-{_SAFE.sub('-', tenant).strip('-').lower()}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        for previous in self._keys.values():
            if previous.tenant == tenant and previous.state is KeyState.ACTIVE:
                self.set_state(previous.key_id, KeyState.DECRYPT_ONLY)
        material = secrets.token_bytes(self.suite.key_bytes)
        record = {
            "key_id": key_id,
            "tenant": tenant,
            "state": KeyState.ACTIVE.value,
            "suite": int(self.suite),
            "created_at": now.isoformat(timespec="microseconds"),
            "material": base64.b64encode(material).decode(),
        }
        self._write(key_id, record)
        self._scan(force=True)
        return self._keys[key_id]

    def set_state(self, key_id: str, state: KeyState) -> None:
        path = self._path(key_id)
        record = json.loads(path.read_text(encoding="utf-8"))
        record["state"] = state.value
        self._write(key_id, record)
        self._scan(force=True)

    def destroy(self, key_id: str) -> None:
        """Crypto-shredding: the material is overwritten and removed; a tombstone remains so
        that reads fail with "destroyed", not "unknown".
        """
        path = self._path(key_id)
        record = json.loads(path.read_text(encoding="utf-8"))
        record.update(state=KeyState.DESTROYED.value, material=None, destroyed_at=datetime.now(UTC).isoformat())
        size = path.stat().st_size
        with open(path, "r+b") as handle:  # overwrite the old bytes before replacing the file
            handle.write(secrets.token_bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
        self._write(key_id, record)
        self._scan(force=True)

    def index_key(self) -> bytes:
        path = self.directory / "index.json"
        if not path.exists():
            if not self.create_missing:
                raise KeyringError(f"the keyring has no index key ({path})")
            self.directory.mkdir(parents=True, exist_ok=True)
            record = {
                "purpose": "blind indexes and keyed digests",
                "material": base64.b64encode(secrets.token_bytes(32)).decode(),
            }
            _write_private(path, record)
        return base64.b64decode(json.loads(path.read_text(encoding="utf-8"))["material"])

    def _signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The audit log's checkpoint-signing key (Ed25519), made on first use where allowed."""
        path = self.directory / "audit-signing.json"
        if not path.exists():
            if not self.create_missing:
                raise KeyringError(f"the keyring has no audit signing key ({path})")
            self.directory.mkdir(parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            raw = key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            record = {"key_id": f"audit-{secrets.token_hex(4)}", "private": base64.b64encode(raw).decode()}
            _write_private(path, record)
        record = json.loads(path.read_text(encoding="utf-8"))
        return record["key_id"], Ed25519PrivateKey.from_private_bytes(base64.b64decode(record["private"]))

    def sign(self, message: bytes) -> tuple[str, bytes]:
        key_id, key = self._signing_key()
        return key_id, key.sign(message)

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        known_id, key = self._signing_key()
        if key_id != known_id:
            return False
        try:
            key.public_key().verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def _path(self, key_id: str) -> Path:
        path = self.directory / f"{key_id}.json"
        if not path.exists():
            raise KeyringError(f"master key {key_id} is not in the keyring")
        return path

    def _write(self, key_id: str, record: dict[str, object]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_private(self.directory / f"{key_id}.json", record)


def _write_private(path: Path, record: dict[str, object]) -> None:
    """Write atomically, readable by the owner only."""
    temporary = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
