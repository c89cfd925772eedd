"""Bearer tokens for the tests: a test issuer whose public key sits in a keys/issuers/ folder of
the tests' own, and helpers to mint tokens for every role, valid or deliberately broken.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from api.crypto.keyring import FileKeyring
from api.crypto.suites import Suite
from tests.api.documents import HOSPITAL, PHARMACY, REGION

ISSUER = "https://idp.test.example"
KEY_ID = "test-2026-1"
AUDIENCE = "settle"


@dataclass(frozen=True)
class Tokens:
    keys_dir: Path
    private_key: Ed25519PrivateKey

    @classmethod
    def create(cls, keys_dir: Path) -> Tokens:
        key = Ed25519PrivateKey.generate()
        public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
        public.update(kid=KEY_ID, alg="EdDSA")
        (keys_dir / "issuers").mkdir(parents=True)
        (keys_dir / "issuers" / "test.json").write_text(json.dumps({"issuer": ISSUER, "keys": [public]}))
        keyring = FileKeyring(keys_dir / "keyring", Suite.AES_256_GCM, create_missing=True)
        keyring.index_key()
        keyring.audit_mac(b"")  # the audit MAC and signing keys, as production provisions them
        keyring.sign(b"")
        return cls(keys_dir, key)

    @property
    def keyring_dir(self) -> Path:
        """The tests' field-encryption keyring (created here, so that production mode finds it)."""
        return self.keys_dir / "keyring"

    def claims(self, role: str, org: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"user-of-{org}",
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "role": role,
            "org": org,
            "regions": [],
            "grants": [],
        }
        claims.update(overrides)
        return claims

    def mint(
        self, role: str, org: str, *, key: Ed25519PrivateKey | None = None, kid: str = KEY_ID, **claims: Any
    ) -> str:
        return jwt.encode(
            self.claims(role, org, **claims), key or self.private_key, algorithm="EdDSA", headers={"kid": kid}
        )

    @property
    def hospital(self) -> str:
        return self.mint("hospital", HOSPITAL)

    @property
    def pharmacy(self) -> str:
        return self.mint("pharmacy", PHARMACY)

    @property
    def admin(self) -> str:
        return self.mint("admin", "NHSA-OPS")

    def supervisor(self, *regions: str, grants: tuple[str, ...] = ()) -> str:
        return self.mint("supervisor", "NHSA-SUPERVISION", regions=list(regions or (REGION,)), grants=list(grants))

    def payer(self, role: str, code: str) -> str:
        return self.mint(role, code)
