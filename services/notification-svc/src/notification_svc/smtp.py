"""Delivery over SMTP with aiosmtplib: ``smtp://`` (STARTTLS, required when credentials are
given) or ``smtps://`` (TLS from the first byte), optional ``user:password@``."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib


class SmtpConfigError(ValueError):
    """``PLUGPAY_SMTP_URL`` is not a usable SMTP address (the message never repeats it)."""


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise SmtpConfigError("PLUGPAY_SMTP_URL must start with smtp:// or smtps://")
        try:
            port = parts.port
        except ValueError:
            raise SmtpConfigError("PLUGPAY_SMTP_URL has an invalid port") from None
        if not parts.hostname:
            raise SmtpConfigError("PLUGPAY_SMTP_URL names no host")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 587),
            implicit_tls=implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __repr__(self) -> str:  # never the password
        return f"SmtpTarget({self.host}:{self.port}, tls={self.implicit_tls})"


class SmtpSender:
    """Sends one message per call; raises on any refusal so the queue retries it."""

    def __init__(self, target: SmtpTarget, *, timeout_s: float = 30.0) -> None:
        self.target = target
        self.timeout_s = timeout_s

    async def send(self, message: EmailMessage) -> None:
        t = self.target
        credentials = t.username is not None
        await aiosmtplib.send(
            message,
            hostname=t.host,
            port=t.port,
            username=t.username,
            password=t.password,
            use_tls=t.implicit_tls,
            # Credentials never cross in clear: STARTTLS is required with them, opportunistic
            # without (a local relay or the embedded development server).
            start_tls=None if t.implicit_tls else (True if credentials else None),
            tls_context=ssl.create_default_context(),
            timeout=self.timeout_s,
        )
