"""The cryptography auth-svc uses: argon2id hashes, opaque secrets, Ed25519 signing keys.

CPU only, no I/O: the service layer decides when to call these; repositories store results.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

# OWASP Password Storage Cheat Sheet, "Argon2id": "a minimum configuration of 19 MiB of
# memory, an iteration count of 2, and 1 degree of parallelism" (m=19456 KiB, t=2, p=1).
OWASP_ARGON2ID: dict[str, Any] = {"memory_cost": 19456, "time_cost": 2, "parallelism": 1}


class PasswordHashing:
    """argon2id hashing off the event loop, with a dummy hash for unknown accounts."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher(**OWASP_ARGON2ID, hash_len=32, salt_len=16, type=Type.ID)
        # Verifying against this when the account does not exist costs the same as a real
        # check, so response time does not reveal which emails have accounts.
        self.dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    def hash_now(self, password: str) -> str:
        """Blocking variant for start-up and scripts."""
        return self._hasher.hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True only for an existing hash that matches; an absent one costs the same."""
        target = password_hash or self.dummy_hash
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(ok) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def new_secret() -> tuple[str, bytes]:
    """A 256-bit opaque secret for the client and the SHA-256 digest we store of it.

    A fast hash is enough here: the secret has full entropy, unlike a password.
    """
    token = secrets.token_urlsafe(32)
    return token, secret_digest(token)


def secret_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 key pair as stored: the private half as PEM, the public half as a JWK."""

    kid: str
    private_pem: str
    public_jwk: dict[str, Any]
    created_at: datetime
    retired_at: datetime | None = None


def new_signing_key(now: datetime) -> SigningKey:
    """A fresh Ed25519 key with a unique key id."""
    private = Ed25519PrivateKey.generate()
    kid = f"{now:%Y%m%d}-{uuid.uuid4().hex[:12]}"
    public = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKey(
        kid=kid,
        private_pem=pem,
        public_jwk={**public, "kid": kid, "alg": "EdDSA", "use": "sig"},
        created_at=now,
    )


_loaded: dict[str, Ed25519PrivateKey] = {}


def sign_token(claims: dict[str, object], key: SigningKey) -> str:
    """A compact JWS (EdDSA) with the key id in its header (typ per RFC 9068)."""
    private = _loaded.get(key.kid)
    if private is None:
        loaded = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
        assert isinstance(loaded, Ed25519PrivateKey)
        private = _loaded[key.kid] = loaded
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "at+jwt"})
