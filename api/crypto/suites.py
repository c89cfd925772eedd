"""Authenticated encryption suites: AES-256-GCM, and SM4-GCM where the installed OpenSSL has it.

SM4-GCM (GB/T 32907 with GCM, as in RFC 8998) is for deployments that must use national
commercial cryptography; with it, blind indexes and keyed digests use HMAC-SM3 (GB/T 32905).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16


class Suite(IntEnum):
    """The suite byte written into every ciphertext and wrapped key."""

    AES_256_GCM = 1
    SM4_GCM = 2

    @property
    def key_bytes(self) -> int:
        return 32 if self is Suite.AES_256_GCM else 16

    @property
    def label(self) -> str:
        return "aes-256-gcm" if self is Suite.AES_256_GCM else "sm4-gcm"

    @classmethod
    def from_label(cls, label: str) -> Suite:
        for suite in cls:
            if suite.label == label:
                return suite
        raise ValueError(f"unknown cipher suite {label!r}: use aes-256-gcm or sm4-gcm")


class SuiteUnavailable(RuntimeError):
    """The configured suite cannot run on this machine's OpenSSL."""


@functools.cache
def sm4_gcm_available() -> bool:
    """Whether OpenSSL here runs SM4 in GCM mode and SM3 (checked once, by doing it)."""
    try:
        encryptor = Cipher(algorithms.SM4(bytes(16)), modes.GCM(bytes(NONCE_BYTES))).encryptor()
        encryptor.update(b"probe")
        encryptor.finalize()
        digest = hashes.Hash(hashes.SM3())
        digest.update(b"probe")
        digest.finalize()
    except Exception:  # any refusal by the backend means: not available
        return False
    return True


def require(suite: Suite) -> None:
    if suite is Suite.SM4_GCM and not sm4_gcm_available():
        raise SuiteUnavailable(
            "SETTLE_CIPHER_SUITE=sm4-gcm, but the installed OpenSSL does not provide SM4-GCM and SM3; "
            "install an OpenSSL build with the SM algorithms, or use aes-256-gcm"
        )


def seal(suite: Suite, key: bytes, nonce: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """Ciphertext followed by its 16-byte tag."""
    if suite is Suite.AES_256_GCM:
        return AESGCM(key).encrypt(nonce, plaintext, associated)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(associated)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return body + encryptor.tag


def open_(suite: Suite, key: bytes, nonce: bytes, sealed: bytes, associated: bytes) -> bytes:
    """The plaintext, or InvalidTag when the key, nonce, associated data or bytes do not match."""
    if len(sealed) < TAG_BYTES:
        raise InvalidTag
    if suite is Suite.AES_256_GCM:
        return AESGCM(key).decrypt(nonce, sealed, associated)
    body, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(associated)
    return decryptor.update(body) + decryptor.finalize()


def keyed_hash(suite: Suite, key: bytes, message: bytes) -> str:
    """HMAC-SHA-256, or HMAC-SM3 under the SM suite: hex."""
    if suite is Suite.AES_256_GCM:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(message)
    return mac.finalize().hex()
