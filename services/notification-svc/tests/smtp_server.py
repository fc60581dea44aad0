"""A real SMTP server (aiosmtpd) on the test's event loop, keeping what it received."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class ReceivedMail:
    to: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return str(part.get_content())


@dataclass
class Mailbox:
    """The handler: accepts everything but recipients starting with ``bounce``."""

    received: list[ReceivedMail] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(ReceivedMail(list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.received if address in m.to]


class SmtpServer:
    """``async with SmtpServer(port=...)``: listens on 127.0.0.1 until the block ends."""

    def __init__(self, port: int = 0, mailbox: Mailbox | None = None) -> None:
        # aiosmtpd logs every line it receives at DEBUG: the receiving end's business.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.port = port
        self.mailbox = mailbox or Mailbox()
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> SmtpServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self.mailbox, hostname="mail.test"), "127.0.0.1", self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"
