"""The session code a station shows (patent claims 1, 8, 11): the contract between the
station-gateway, which makes it, and session-svc, which verifies it without calling the gateway
and without waiting for the code's ``SessionCodeIssued`` to arrive from the log.

The QR content is ``{public base URL}/s/{code}``, the code 40 base64url characters of a
30-byte compact binary: a random nonce (the session id is derived from it), the issue time,
the lifetime, the connector, a 3-byte tag of the station id, and an 88-bit truncated
HMAC-SHA256 over all of them and the full station id. Short enough for a version-6 QR symbol at
error correction M on a small charger screen (a signed JWT needed version 15). The MAC key is
symmetric: the gateway and session-svc share it (``kty: oct`` JWKs; several verify at once
during a rotation). Beside it, a short code for typing by hand, from an alphabet without
look-alike characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# No 0/O, 1/I/L, 2/Z, 5/S, 8/B: codes are read off a screen in sunlight and typed on a phone.
TYPED_CODE_ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"
TYPED_CODE_LENGTH = 6

# nonce 9 | issued (unix s) 4 | lifetime (s) 2 | connector 1 | station tag 3 | MAC 11
_BODY = struct.Struct(">9sIHB3s")
MAC_BYTES = 11
CODE_BYTES = _BODY.size + MAC_BYTES  # 30 bytes: 40 base64url characters, no padding
CODE_CHARS = CODE_BYTES * 4 // 3
_MAC_CONTEXT = b"plugpay-session-code-v1\x00"
_SESSION_CONTEXT = b"plugpay-session-id-v1\x00"
_TAG_CONTEXT = b"plugpay-station-tag-v1\x00"

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
    """A code that is not a valid session code; ``reason`` is machine-readable."""

    def __init__(self, reason: CodeProblem, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class UnverifiedCode:
    """A code's fields as read, before its MAC is checked against a station id."""

    nonce: bytes
    session_started_at: datetime
    expires_at: datetime
    connector_id: int
    station_tag: bytes
    body: bytes
    mac: bytes

    @property
    def session_id(self) -> uuid.UUID:
        return session_id_for(self.nonce)

    @property
    def token_id(self) -> str:
        return _b64(self.nonce)

    def may_be_for(self, station_id: str) -> bool:
        """Whether the code's station tag fits this station (a cheap filter before the MAC)."""
        return hmac.compare_digest(self.station_tag, station_tag(station_id))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_signing_key(kid: str | None = None) -> dict[str, Any]:
    """A new 256-bit MAC key as a JWK (``kty: oct``): secret, for the gateway and session-svc."""
    return {
        "kty": "oct",
        "k": _b64(secrets.token_bytes(32)),
        "kid": kid or f"code-{uuid.uuid4().hex[:8]}",
        "alg": "HS256",
    }


def is_signing_key(jwk: dict[str, Any]) -> bool:
    """Whether ``jwk`` is a key this module makes codes with (older Ed25519 keys are not)."""
    return jwk.get("kty") == "oct" and isinstance(jwk.get("k"), str)


def verification_jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    """The JWKS session-svc verifies codes with: the MAC keys themselves (keep it secret)."""
    return {"keys": [dict(k) for k in keys if is_signing_key(k)]}


def session_id_for(nonce: bytes) -> uuid.UUID:
    """The session a code's nonce names: derived, so the code need not carry 16 bytes of it."""
    return uuid.UUID(bytes=hashlib.sha256(_SESSION_CONTEXT + nonce).digest()[:16], version=4)


def station_tag(station_id: str) -> bytes:
    """Three bytes naming a station among the known ones (the MAC binds the full id)."""
    return hashlib.sha256(_TAG_CONTEXT + station_id.encode()).digest()[:3]


def new_typed_code() -> str:
    """A random code of ``TYPED_CODE_LENGTH`` characters (25^6 ≈ 244 million)."""
    return "".join(secrets.choice(TYPED_CODE_ALPHABET) for _ in range(TYPED_CODE_LENGTH))


def normalise_typed_code(raw: str) -> str:
    """What a person typed, tolerant of case, spaces and dashes."""
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def _mac(key: dict[str, Any], body: bytes, station_id: str) -> bytes:
    secret = _unb64(str(key["k"]))
    return hmac.new(secret, _MAC_CONTEXT + body + station_id.encode(), hashlib.sha256).digest()[
        :MAC_BYTES
    ]


def sign_session_code(
    key: dict[str, Any],
    *,
    station_id: str,
    connector_id: int,
    session_started_at: datetime,
    lifetime: timedelta = timedelta(minutes=5),
) -> tuple[str, SessionCodeClaims]:
    """Make a session code for a new session; returns the code and what it says (the session
    id among it: derived from the code's nonce)."""
    if not is_signing_key(key):
        raise ValueError("the session-code key must be a symmetric JWK (kty oct)")
    if not 1 <= connector_id <= 255:
        raise ValueError("a session code names connectors 1 to 255")
    seconds = int(lifetime.total_seconds())
    if not 1 <= seconds <= 65_535:
        raise ValueError("a session code lives 1 s to 18 h")
    nonce = secrets.token_bytes(9)
    issued = int(session_started_at.timestamp())
    body = _BODY.pack(nonce, issued, seconds, connector_id, station_tag(station_id))
    code = _b64(body + _mac(key, body, station_id))
    started = datetime.fromtimestamp(issued, UTC)
    return code, SessionCodeClaims(
        station_id=station_id,
        connector_id=connector_id,
        session_id=session_id_for(nonce),
        session_started_at=started,
        expires_at=started + timedelta(seconds=seconds),
        token_id=_b64(nonce),
    )


def token_from_scan(content: str) -> str:
    """The code inside what a camera read: a ``…/s/{code}`` URL or the bare code."""
    content = content.strip()
    if "/s/" in content:
        content = content.rsplit("/s/", 1)[1]
    return content.split("?", 1)[0].split("#", 1)[0]


def code_binding(content: str) -> str:
    """What a guest token names as the one code it may use: a digest of the code as a scan or
    a typed entry reads it (so the QR's URL and its bare token bind alike), never the code."""
    content = content.strip()
    canonical = (
        token_from_scan(content)
        if looks_like_session_code(content)
        else normalise_typed_code(content)
    )
    return hashlib.sha256(b"plugpay-guest-code:" + canonical.encode()).hexdigest()


def looks_like_session_code(content: str) -> bool:
    """A QR's URL or its bare code (a typed code is much shorter)."""
    return "/s/" in content or len(content.strip()) == CODE_CHARS


def read_session_code(code: str) -> UnverifiedCode:
    """The fields of a code, unverified; ``code_malformed`` when it is not one at all."""
    if len(code) != CODE_CHARS:
        raise SessionCodeRejected("code_malformed", "this is not a Plugpay code")
    try:
        raw = base64.urlsafe_b64decode(code.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError) as error:
        raise SessionCodeRejected("code_malformed", "this is not a Plugpay code") from error
    if len(raw) != CODE_BYTES:
        raise SessionCodeRejected("code_malformed", "this is not a Plugpay code")
    body, mac = raw[: _BODY.size], raw[_BODY.size :]
    nonce, issued, seconds, connector_id, tag = _BODY.unpack(body)
    if connector_id == 0 or seconds == 0:
        raise SessionCodeRejected("code_malformed", "the code is incomplete")
    started = datetime.fromtimestamp(issued, UTC)
    return UnverifiedCode(
        nonce=nonce,
        session_started_at=started,
        expires_at=started + timedelta(seconds=seconds),
        connector_id=connector_id,
        station_tag=tag,
        body=body,
        mac=mac,
    )


def verify_session_code(
    code: str,
    jwks: dict[str, Any],
    *,
    station_ids: Iterable[str],
    now: datetime,
    tolerance: timedelta = timedelta(minutes=5),
    clock_skew: timedelta = timedelta(seconds=30),
) -> SessionCodeClaims:
    """Check the MAC (for one of ``station_ids``: the session's station if known, else the
    stations whose tag fits) and freshness; raise ``SessionCodeRejected`` otherwise.

    Freshness: the session must have started at most ``tolerance`` ago (and not in the
    future beyond ``clock_skew``), and the code's own expiry must not have passed.
    """
    read = read_session_code(code)
    keys = [k for k in jwks.get("keys", []) if is_signing_key(k)]
    station_id = next(
        (
            s
            for s in station_ids
            if read.may_be_for(s)
            and any(hmac.compare_digest(read.mac, _mac(k, read.body, s)) for k in keys)
        ),
        None,
    )
    if station_id is None:
        raise SessionCodeRejected("code_invalid", "the code was not made by Plugpay")
    if read.session_started_at > now + clock_skew:
        raise SessionCodeRejected("code_invalid", "the code is dated in the future")
    if now > min(read.expires_at, read.session_started_at + tolerance) + clock_skew:
        raise SessionCodeRejected(
            "code_expired", "the code has expired; ask the station for a new one"
        )
    return SessionCodeClaims(
        station_id=station_id,
        connector_id=read.connector_id,
        session_id=read.session_id,
        session_started_at=read.session_started_at,
        expires_at=read.expires_at,
        token_id=read.token_id,
    )
