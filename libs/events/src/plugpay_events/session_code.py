"""The session code a station shows (patent claims 1, 8, 11): the contract between the
station-gateway, which signs it, and session-svc, which verifies it without calling the gateway.

The QR content is ``{public base URL}/s/{token}``; the token is a compact JWS (EdDSA) whose
claims carry the station id, connector id, session id and session start time. The gateway
holds the private key; session-svc trusts a JWKS of public keys (rotation: several at once).
Beside it, a short code for typing by hand, from an alphabet without look-alike characters.
"""

from __future__ import annotations

import functools
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from jwt.algorithms import OKPAlgorithm
from pydantic import BaseModel, ConfigDict

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: codes are read off a screen in sunlight and typed on a phone.
TYPED_CODE_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"
TYPED_CODE_LENGTH = 6
AUDIENCE = "plugpay-session-code"

CodeProblem = Literal["code_invalid", "code_expired", "code_malformed"]


class SessionCodeClaims(BaseModel):
    """What a session code says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    station_id: str
    connector_id: int
    session_id: uuid.UUID
    session_started_at: datetime
    expires_at: datetime
    token_id: str


class SessionCodeRejected(ValueError):
    """A token that is not a valid session code; ``reason`` is machine-readable."""

    def __init__(self, reason: CodeProblem, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def generate_signing_key(kid: str | None = None) -> dict[str, Any]:
    """A new Ed25519 private key as a JWK (keep it secret; publish ``public_jwks``)."""
    key = Ed25519PrivateKey.generate()
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": kid or f"code-{uuid.uuid4().hex[:8]}", "alg": "EdDSA"}


def public_jwks(*private_jwks: dict[str, Any]) -> dict[str, Any]:
    """The JWKS to give verifiers: the public halves only."""
    return {"keys": [{k: v for k, v in j.items() if k != "d"} for j in private_jwks]}


def new_typed_code() -> str:
    """A random code of ``TYPED_CODE_LENGTH`` characters (25^6 ≈ 244 million)."""
    return "".join(secrets.choice(TYPED_CODE_ALPHABET) for _ in range(TYPED_CODE_LENGTH))


def normalise_typed_code(raw: str) -> str:
    """What a person typed, tolerant of case, spaces and dashes."""
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def sign_session_code(
    private_jwk: dict[str, Any],
    *,
    station_id: str,
    connector_id: int,
    session_id: uuid.UUID,
    session_started_at: datetime,
    lifetime: timedelta = timedelta(minutes=5),
) -> tuple[str, SessionCodeClaims]:
    """Sign a session code; returns the token and what it says."""
    token_id = uuid.uuid4().hex
    expires_at = session_started_at + lifetime
    key = OKPAlgorithm.from_jwk(json.dumps(private_jwk))
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the session-code signing key must be an Ed25519 private key")
    issued = int(session_started_at.timestamp())
    expires = int(expires_at.timestamp())
    claims: dict[str, Any] = {
        "aud": AUDIENCE,
        "st": station_id,
        "cn": connector_id,
        "sid": str(session_id),
        "iat": issued,
        "exp": expires,
        "jti": token_id,
    }
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": private_jwk["kid"]})
    return token, SessionCodeClaims(
        station_id=station_id,
        connector_id=connector_id,
        session_id=session_id,
        session_started_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        token_id=token_id,
    )


def token_from_scan(content: str) -> str:
    """The token inside what a camera read: a ``…/s/{token}`` URL or the bare token."""
    content = content.strip()
    if "/s/" in content:
        content = content.rsplit("/s/", 1)[1]
    return content.split("?", 1)[0].split("#", 1)[0]


@functools.lru_cache(maxsize=16)
def _public_key(jwk_json: str) -> Any:
    """A parsed key per JWK (the same few keys verify every scan; parsing is not free)."""
    return OKPAlgorithm.from_jwk(jwk_json)


def verify_session_code(
    token: str,
    jwks: dict[str, Any],
    *,
    now: datetime,
    tolerance: timedelta = timedelta(minutes=5),
    clock_skew: timedelta = timedelta(seconds=30),
) -> SessionCodeClaims:
    """Check signature and freshness; raise ``SessionCodeRejected`` with a reason otherwise.

    Freshness: the session must have started at most ``tolerance`` ago (and not in the
    future beyond ``clock_skew``), and the token's own expiry must not have passed.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise SessionCodeRejected("code_malformed", "this is not a Plugpay code") from error
    if header.get("alg") != "EdDSA":
        raise SessionCodeRejected("code_invalid", "the code's signature is not valid")
    key_data = next((k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")), None)
    if key_data is None:
        raise SessionCodeRejected("code_invalid", "the code was not signed by Plugpay")
    key = _public_key(json.dumps(key_data, sort_keys=True))
    if not isinstance(key, Ed25519PublicKey):
        raise SessionCodeRejected("code_invalid", "the code was not signed by Plugpay")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            audience=AUDIENCE,
            options={"verify_exp": False, "require": ["exp", "iat", "jti", "aud"]},
        )
    except jwt.PyJWTError as error:
        raise SessionCodeRejected("code_invalid", "the code's signature is not valid") from error
    try:
        result = SessionCodeClaims(
            station_id=str(claims["st"]),
            connector_id=int(claims["cn"]),
            session_id=uuid.UUID(str(claims["sid"])),
            session_started_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            token_id=str(claims["jti"]),
        )
    except (KeyError, ValueError, TypeError, OverflowError, OSError) as error:
        # OverflowError/OSError: numbers no datetime or int can hold (1e308, 2**62 seconds).
        raise SessionCodeRejected("code_malformed", "the code is incomplete") from error
    if result.session_started_at > now + clock_skew:
        raise SessionCodeRejected("code_invalid", "the code is dated in the future")
    if now > min(result.expires_at, result.session_started_at + tolerance) + clock_skew:
        raise SessionCodeRejected(
            "code_expired", "the code has expired; ask the station for a new one"
        )
    return result
