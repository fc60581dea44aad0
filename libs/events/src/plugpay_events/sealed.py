"""Secrets that must cross the event log: sealed with AES-256-GCM for their one reader.

A mailed link's code (e-mail verification, password reset, invitation) goes from auth-svc to
notification-svc in an event, and topics keep events forever for every analyst to read. The
code is therefore sealed with a key only those two services hold (``PLUGPAY_MAIL_LINK_KEY``);
the event's type and aggregate are bound as associated data, so a sealed code cannot be moved
into another event.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["DEVELOPMENT_KEY", "SealError", "decode_key", "open_sealed", "seal"]

# Development and test stacks only (production refuses to start without a real key).
DEVELOPMENT_KEY = hashlib.sha256(b"plugpay development mail-link key, never production").digest()


class SealError(ValueError):
    """The sealed text is malformed, tampered with, or sealed under another key or context."""


def decode_key(text: str) -> bytes:
    """A 32-byte key from its base64url text (``openssl rand -base64 32`` works too)."""
    try:
        key = base64.urlsafe_b64decode(text.strip().replace("+", "-").replace("/", "_") + "==")
    except ValueError:
        raise ValueError("the mail-link key is not base64") from None
    if len(key) != 32:
        raise ValueError("the mail-link key must be 32 bytes (base64 of 32 random bytes)")
    return key


def seal(key: bytes, plaintext: str, context: str) -> str:
    """``plaintext`` encrypted and authenticated for ``context`` (``"<event type>:<user>"``)."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_sealed(key: bytes, sealed: str, context: str) -> str:
    """The plaintext of ``seal(key, plaintext, context)``; ``SealError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        if len(raw) < 12 + 16:
            raise SealError("too short")
        return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
    except (InvalidTag, ValueError, UnicodeDecodeError) as error:
        raise SealError("cannot open this sealed value") from error
