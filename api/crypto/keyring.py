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

Besides master keys the keyring holds secrets that never encrypt: the index key, from which
blind indexes (equality search on encrypted fields) and keyed digests are computed, and the audit
log's two kinds of keys (see api/services/audit_chain.py):

    audit MAC key       HMAC-SHA-256 (HMAC-SM3 under the SM suite) over each audit entry, computed
                        when it is written: an entry the service did not write cannot carry one
    audit signing key   Ed25519 over the chain's checkpoints (length and head hash): a chain
                        rebuilt after tampering cannot carry the old signatures

Each is `active` (MACs or signs what is new) or, after `settle keys rotate-audit`, `verify_only`:
kept for good, because entries and checkpoints name the key that vouches for them.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from api.crypto.suites import NONCE_BYTES, Suite, keyed_hash, open_, seal


class KeyState(StrEnum):
    ACTIVE = "active"
    DECRYPT_ONLY = "decrypt_only"
    RETIRED = "retired"
    DESTROYED = "destroyed"


class KeyringError(Exception):
    """A master key cannot do what was asked; the message says which key and why."""


class KeyDestroyed(KeyringError):
    """Crypto-shredded: what this key wrapped can never be read again."""


class AuditKeyState(StrEnum):
    ACTIVE = "active"
    VERIFY_ONLY = "verify_only"


class AuditKeyPurpose(StrEnum):
    MAC = "audit-mac"
    SIGNING = "audit-signing"


@dataclass(frozen=True, slots=True)
class AuditKey:
    """An audit MAC key or checkpoint-signing key, as listed (never its material)."""

    key_id: str
    purpose: AuditKeyPurpose
    state: AuditKeyState
    algorithm: str
    created_at: str


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

    def audit_public_key(self, key_id: str) -> bytes | None: ...

    def audit_mac(self, message: bytes) -> tuple[str, str]: ...

    def verify_audit_mac(self, key_id: str, message: bytes, mac: str) -> bool: ...

    def audit_keys(self) -> Sequence[AuditKey]: ...

    def rotate_audit_keys(self) -> list[AuditKey]: ...


_SAFE = re.compile(r"[^A-Za-z0-9]+")
_AUDIT_KEY_ID = re.compile(r"audit-(mac|sign)-[0-9]{14}-[0-9a-f]{6}")
"""The ids `settle keys rotate-audit` makes, and the name of each key's file: an unknown id in this
form is looked for on disk (one stat), any other is unknown for good, so that forged entries
naming made-up keys cannot make every MAC check reread the folder."""


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
        self._audit: dict[str, AuditKey] = {}
        self._audit_material: dict[str, bytes] = {}

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
        self._audit, self._audit_material = self._scan_audit()

    def _scan_audit(self) -> tuple[dict[str, AuditKey], dict[str, bytes]]:
        """The audit keys: `audit-mac-*.json`, `audit-sign-*.json`, and `audit-signing.json` (the
        single signing key of earlier versions, active until the first rotation).
        """
        keys: dict[str, AuditKey] = {}
        material: dict[str, bytes] = {}
        if not self.directory.exists():
            return keys, material
        paths = [
            *self.directory.glob("audit-mac-*.json"),
            *self.directory.glob("audit-sign-*.json"),
            *self.directory.glob("audit-signing.json"),
        ]
        for path in paths:
            record = json.loads(path.read_text(encoding="utf-8"))
            mac = path.name.startswith("audit-mac-")
            purpose = AuditKeyPurpose.MAC if mac else AuditKeyPurpose.SIGNING
            algorithm = _mac_algorithm(Suite(record["suite"])) if mac else "ed25519"
            state = AuditKeyState(record.get("state", AuditKeyState.ACTIVE.value))
            keys[record["key_id"]] = AuditKey(record["key_id"], purpose, state, algorithm, record.get("created_at", ""))
            material[record["key_id"]] = base64.b64decode(record["material" if mac else "private"])
        return keys, material

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

    # --- the audit log's keys ------------------------------------------------------------------

    def audit_keys(self) -> Sequence[AuditKey]:
        self._scan()
        return sorted(self._audit.values(), key=lambda key: (key.purpose, key.created_at, key.key_id))

    def _active_audit(self, purpose: AuditKeyPurpose) -> tuple[str, bytes]:
        """The active key of `purpose`, made on first use where allowed (development)."""
        self._scan()
        found = [key for key in self._audit.values() if key.purpose is purpose and key.state is AuditKeyState.ACTIVE]
        if not found:
            self._scan(force=True)
            found = [k for k in self._audit.values() if k.purpose is purpose and k.state is AuditKeyState.ACTIVE]
        if not found:
            if not self.create_missing:
                raise KeyringError(
                    f"the keyring ({self.directory}) has no active {purpose} key: run `settle keys rotate-audit`"
                )
            self._create_audit(purpose)
            return self._active_audit(purpose)
        key = max(found, key=lambda key: (key.created_at, key.key_id))
        return key.key_id, self._audit_material[key.key_id]

    def _known_audit(self, key_id: str, purpose: AuditKeyPurpose) -> bytes | None:
        """Any key of `purpose`, active or kept for verification; None if unknown."""
        self._scan()
        if (
            key_id not in self._audit
            and _AUDIT_KEY_ID.fullmatch(key_id)
            and (self.directory / f"{key_id}.json").exists()
        ):
            self._scan(force=True)  # made by another process within the last second
        key = self._audit.get(key_id)
        return None if key is None or key.purpose is not purpose else self._audit_material[key_id]

    def _create_audit(self, purpose: AuditKeyPurpose) -> AuditKey:
        """A new active key of `purpose`; the previous active ones are kept, verify-only."""
        self._scan(force=True)
        now = datetime.now(UTC)
        label = "mac" if purpose is AuditKeyPurpose.MAC else "sign"
        key_id = f"audit-{label}-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        record: dict[str, object] = {
            "key_id": key_id,
            "state": AuditKeyState.ACTIVE.value,
            "created_at": now.isoformat(timespec="microseconds"),
        }
        if purpose is AuditKeyPurpose.MAC:
            record.update(suite=int(self.suite), material=base64.b64encode(secrets.token_bytes(32)).decode())
        else:
            private = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            record.update(private=base64.b64encode(private).decode())
        self.directory.mkdir(parents=True, exist_ok=True)
        for previous in [key for key in self._audit.values() if key.purpose is purpose]:
            if previous.state is AuditKeyState.ACTIVE:
                self._set_audit_state(previous.key_id, AuditKeyState.VERIFY_ONLY)
        _write_private(self.directory / f"{key_id}.json", record)
        self._scan(force=True)
        return self._audit[key_id]

    def _set_audit_state(self, key_id: str, state: AuditKeyState) -> None:
        candidates = [self.directory / f"{key_id}.json", self.directory / "audit-signing.json"]
        for path in candidates:
            if path.exists():
                record = json.loads(path.read_text(encoding="utf-8"))
                if record["key_id"] == key_id:
                    record["state"] = state.value
                    _write_private(path, record)
                    return
        raise KeyringError(f"audit key {key_id} is not in the keyring")

    def rotate_audit_keys(self) -> list[AuditKey]:
        """New active MAC and signing keys; the old ones stay, verify-only, for good."""
        return [self._create_audit(AuditKeyPurpose.MAC), self._create_audit(AuditKeyPurpose.SIGNING)]

    def audit_mac(self, message: bytes) -> tuple[str, str]:
        key_id, material = self._active_audit(AuditKeyPurpose.MAC)
        return key_id, keyed_hash(self._audit_suite(key_id), material, message)

    def verify_audit_mac(self, key_id: str, message: bytes, mac: str) -> bool:
        material = self._known_audit(key_id, AuditKeyPurpose.MAC)
        if material is None:
            return False
        return hmac.compare_digest(keyed_hash(self._audit_suite(key_id), material, message), mac)

    def _audit_suite(self, key_id: str) -> Suite:
        return Suite.SM4_GCM if self._audit[key_id].algorithm == _mac_algorithm(Suite.SM4_GCM) else Suite.AES_256_GCM

    def sign(self, message: bytes) -> tuple[str, bytes]:
        key_id, private = self._active_audit(AuditKeyPurpose.SIGNING)
        return key_id, Ed25519PrivateKey.from_private_bytes(private).sign(message)

    def audit_public_key(self, key_id: str) -> bytes | None:
        private = self._known_audit(key_id, AuditKeyPurpose.SIGNING)
        if private is None:
            return None
        return Ed25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        public = self.audit_public_key(key_id)
        return public is not None and verify_signature(public, message, signature)

    def _path(self, key_id: str) -> Path:
        path = self.directory / f"{key_id}.json"
        if not path.exists():
            raise KeyringError(f"master key {key_id} is not in the keyring")
        return path

    def _write(self, key_id: str, record: dict[str, object]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_private(self.directory / f"{key_id}.json", record)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """An Ed25519 signature checked against a raw public key (what a witness can do alone)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _mac_algorithm(suite: Suite) -> str:
    return "hmac-sha256" if suite is Suite.AES_256_GCM else "hmac-sm3"


def _write_private(path: Path, record: Mapping[str, object]) -> None:
    """Write atomically, readable by the owner only."""
    temporary = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
