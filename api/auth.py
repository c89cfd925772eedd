"""Who is calling: bearer tokens (JWT, EdDSA/Ed25519) -> Principal.

Trust: the service accepts tokens only from issuers whose public keys are in `keys/issuers/`
(one JSON file per issuer: {"issuer": ..., "keys": [JWK with "kid" and "alg"]}). In development
mode it also trusts a development issuer whose private key is generated on first use into the
git-ignored `keys/dev/`; `settle token` mints tokens from it. Production never reads `keys/dev/`.

Every refusal raises `Unauthenticated` with one message that names no check: a caller learns
that the token was not accepted, never which test it failed.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import AllowedPublicKeys, OKPAlgorithm

log = logging.getLogger("settle.auth")

DEV_ISSUER = "settle-dev"
DEV_KEY_ID = "dev-1"
ALGORITHMS = ("EdDSA", "ES256")
REQUIRED_CLAIMS = ("iss", "aud", "sub", "jti", "exp", "iat", "role", "org")
LEEWAY_SECONDS = 30


class Role(StrEnum):
    HOSPITAL = "hospital"
    PHARMACY = "pharmacy"
    INSURER = "insurer"
    MUTUAL_AID = "mutual_aid"
    CHARITY = "charity"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


INSTITUTION_ROLES = frozenset({Role.HOSPITAL, Role.PHARMACY})
PAYER_ROLES = frozenset({Role.INSURER, Role.MUTUAL_AID, Role.CHARITY})


class Grant(StrEnum):
    """Extra rights a token may carry beyond its role."""

    PRICE_AUDIT = "price_audit"  # a supervisor (or admin) may read confidential settlement prices


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: `org` is the institution code (hospital, pharmacy), the payer code
    (insurer, mutual aid, charity), or the bureau / operator (supervisor, admin).
    """

    subject: str
    role: Role
    org: str
    regions: frozenset[str]
    grants: frozenset[str]
    token_id: str
    issuer: str

    def has(self, grant: Grant) -> bool:
        return grant.value in self.grants


class Unauthenticated(Exception):
    MESSAGE = "authentication required: present a valid bearer token"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


@dataclass(frozen=True, slots=True)
class TrustedKey:
    issuer: str
    key_id: str
    algorithm: str
    key: AllowedPublicKeys


DEFAULT_MAX_LIFETIME_SECONDS = 12 * 3600
"""A cashier's shift: a token meant to live longer is refused like an expired one."""


class TokenVerifier:
    """Verifies signature, issuer, key id, audience, expiry and not-before, a token id, and a
    lifetime (expiry minus issue time) no longer than the maximum; builds the Principal.
    """

    def __init__(
        self, keys: Iterable[TrustedKey], audience: str, max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS
    ) -> None:
        self.keys = {(key.issuer, key.key_id): key for key in keys}
        self.audience = audience
        self.max_lifetime_seconds = max_lifetime_seconds

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
            issuer, key_id = unverified.get("iss"), header.get("kid")
            if not isinstance(issuer, str) or not isinstance(key_id, str):
                raise Unauthenticated
            trusted = self.keys.get((issuer, key_id))
            if trusted is None or header.get("alg") != trusted.algorithm:
                raise Unauthenticated
            claims = jwt.decode(
                token,
                trusted.key,
                algorithms=[trusted.algorithm],
                audience=self.audience,
                issuer=trusted.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "verify_nbf": True},
            )
            if not isinstance(claims["iat"], int) or not isinstance(claims["exp"], int):
                raise Unauthenticated
            if claims["exp"] - claims["iat"] > self.max_lifetime_seconds:
                raise Unauthenticated
            return Principal(
                subject=_text(claims["sub"]),
                role=Role(claims["role"]),
                org=_text(claims["org"]),
                regions=frozenset(_texts(claims.get("regions", []))),
                grants=frozenset(_texts(claims.get("grants", []))),
                token_id=_text(claims["jti"]),
                issuer=trusted.issuer,
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Unauthenticated from None


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("not a non-empty string")
    return value


def _texts(value: object) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return [_text(item) for item in value]


def unverified_token_id(token: str) -> str | None:
    """The `jti` a rejected token claims (for the audit log of the refusal; never trusted)."""
    try:
        value = jwt.decode(token, options={"verify_signature": False}).get("jti")
    except jwt.PyJWTError:
        return None
    return value[:100] if isinstance(value, str) else None


def load_trusted_keys(directory: Path) -> list[TrustedKey]:
    """The public keys of `directory/*.json`: {"issuer": ..., "keys": [JWK, ...]}, each JWK with
    `kid` and `alg` (EdDSA or ES256). A private key found there is refused: never commit one.
    """
    trusted: list[TrustedKey] = []
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        issuer = document["issuer"]
        for jwk in document["keys"]:
            if "d" in jwk:
                raise ValueError(f"{path} holds a private key; issuer files carry public keys only")
            if jwk.get("alg") not in ALGORITHMS:
                raise ValueError(f"{path}: key {jwk.get('kid')} has no supported alg ({', '.join(ALGORITHMS)})")
            trusted.append(TrustedKey(issuer, jwk["kid"], jwk["alg"], jwt.PyJWK(jwk).key))
    return trusted


@dataclass(frozen=True, slots=True)
class DevIssuer:
    """The development issuer: its private key lives in keys/dev/ (git-ignored), made on first use."""

    private_key: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> DevIssuer:
        path = keys_dir / "dev" / "issuer.json"
        if path.exists():
            jwk = json.loads(path.read_text(encoding="utf-8"))["private_jwk"]
            key = OKPAlgorithm.from_jwk(jwk)
            assert isinstance(key, Ed25519PrivateKey)
            return cls(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        jwk = json.loads(OKPAlgorithm.to_jwk(key))
        jwk.update(kid=DEV_KEY_ID, alg="EdDSA")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"issuer": DEV_ISSUER, "private_jwk": jwk}, handle)
        log.warning("generated a development token issuer key in %s (trusted in development mode only)", path)
        return cls(key)

    def trusted_key(self) -> TrustedKey:
        return TrustedKey(DEV_ISSUER, DEV_KEY_ID, "EdDSA", self.private_key.public_key())

    def mint(
        self,
        *,
        role: Role,
        org: str,
        audience: str,
        subject: str | None = None,
        regions: Iterable[str] = (),
        grants: Iterable[str] = (),
        ttl_seconds: int = 8 * 3600,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER,
            "aud": audience,
            "sub": subject or f"{role.value}:{org}",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "role": role.value,
            "org": org,
            "regions": sorted(regions),
            "grants": sorted(grants),
            **(extra or {}),
        }
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": DEV_KEY_ID})


def build_verifier(
    keys_dir: Path, audience: str, *, development: bool, max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS
) -> TokenVerifier:
    keys = load_trusted_keys(keys_dir / "issuers")
    if development:
        keys.append(DevIssuer.load_or_create(keys_dir).trusted_key())
        log.warning("development mode: tokens of the development issuer %r are trusted", DEV_ISSUER)
    return TokenVerifier(keys, audience, max_lifetime_seconds)
