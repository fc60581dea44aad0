"""Test tokens signed by a throwaway Ed25519 key, and the key source that trusts it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ISSUER = "plugpay-auth"
AUDIENCE = "plugpay"


class TokenFactory:
    """Issues access tokens the way auth-svc does, for tests of other services."""

    def __init__(self, kid: str = "test-key") -> None:
        self.kid = kid
        self.private_key = Ed25519PrivateKey.generate()
        public = OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        self.public_jwk = {**public, "kid": kid, "alg": "EdDSA", "use": "sig"}

    async def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        """KeySource protocol: the JWKS a service should trust."""
        return {"keys": [self.public_jwk]}

    def token(
        self,
        *,
        user_id: uuid.UUID | None = None,
        roles: Iterable[str] = ("driver",),
        organisation_id: uuid.UUID | None = None,
        groups: Iterable[str] = (),
        email_verified: bool = True,
        lifetime_s: int = 900,
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(user_id or uuid.uuid4()),
            "roles": list(roles),
            "groups": list(groups),
            "email_verified": email_verified,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        if organisation_id:
            claims["org"] = str(organisation_id)
        claims.update(overrides)
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})

    def headers(self, **kwargs: Any) -> dict[str, str]:
        """An Authorization header for a token with these claims."""
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}
