"""The embedded default's mail server: without ``PLUGPAY_SMTP_URL``, an ``aiosmtpd`` server on
127.0.0.1 receives what notification-svc sends, and ``/dev/mailbox`` shows it, so a newcomer
can register and verify with nothing installed. Development only: mail stays in memory."""

from __future__ import annotations

import asyncio
import html
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from plugpay_platform.http_security import INLINE_STYLE_CSP, page_headers

MAILBOX_PATH = "/dev/mailbox"


@dataclass(frozen=True)
class DevMail:
    number: int
    received_at: datetime
    sender: str
    to: tuple[str, ...]
    subject: str
    text: str
    # (file name, content type, bytes): an invoice's or credit note's PDF.
    attachments: tuple[tuple[str, str, bytes], ...] = ()


class DevMailbox:
    """The handler: keeps the newest ``limit`` mails in memory."""

    def __init__(self, limit: int = 200) -> None:
        self.mails: deque[DevMail] = deque(maxlen=limit)
        self._count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        if not isinstance(content, bytes):
            return "554 5.6.0 unreadable message"
        message = message_from_bytes(content, policy=policy.default)
        text = ""
        attachments: list[tuple[str, str, bytes]] = []
        if isinstance(message, EmailMessage):
            body = message.get_body(("plain",))
            text = str(body.get_content()) if body is not None else ""
            for part in message.iter_attachments():
                data = part.get_payload(decode=True)
                if isinstance(data, bytes):
                    name = part.get_filename() or "attachment"
                    attachments.append((name, part.get_content_type(), data))
        self._count += 1
        self.mails.appendleft(
            DevMail(
                number=self._count,
                received_at=datetime.now(UTC),
                sender=str(message.get("From", "")),
                to=tuple(envelope.rcpt_tos),
                subject=str(message.get("Subject", "")),
                text=text,
                attachments=tuple(attachments),
            )
        )
        return "250 OK: in the development mailbox"


class DevSmtpServer:
    """The in-process SMTP server, on the serving event loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.mailbox = DevMailbox()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        """Listen; returns the ``smtp://`` URL notification-svc sends to."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self.mailbox, hostname="plugpay-dev-mailbox"), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return f"smtp://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


_LINK = re.compile(r"https?://[^\s<>\"]+")


def _linkified(text: str) -> str:
    out, last = [], 0
    for match in _LINK.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        url = html.escape(match.group(0))
        out.append(f'<a href="{url}">{url}</a>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _attachment_url(mail: DevMail, index: int) -> str:
    return f"{MAILBOX_PATH}/{mail.number}/attachments/{index}"


def _attachment_links(mail: DevMail) -> str:
    if not mail.attachments:
        return ""
    links = "".join(
        f"<li><a href='{_attachment_url(mail, i)}'>{html.escape(name)}</a></li>"
        for i, (name, _, _) in enumerate(mail.attachments)
    )
    return f"<p>Attached:</p><ul class=attachments>{links}</ul>"


def mailbox_app(mailbox: DevMailbox) -> FastAPI:
    """``/dev/mailbox`` (the page, newest first), ``/dev/mailbox.json`` and each mail's
    attachments."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(MAILBOX_PATH, response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        items = "".join(
            f"<article class=mail id='mail-{m.number}'>"
            f"<h2>{html.escape(m.subject)}</h2>"
            f"<p class=meta>To <b class=to>{html.escape(', '.join(m.to))}</b> · from "
            f"{html.escape(m.sender)} · {m.received_at:%Y-%m-%d %H:%M:%S} UTC</p>"
            f"<pre>{_linkified(m.text)}</pre>{_attachment_links(m)}</article>"
            for m in mailbox.mails
        )
        return HTMLResponse(
            "<!doctype html><html lang=en><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'>"
            "<title>Development mailbox · Plugpay</title>"
            "<body style='font-family:system-ui;max-width:48rem;margin:2rem auto'>"
            "<style>pre{white-space:pre-wrap;background:#f4f4f4;padding:.8rem}"
            # A long link wraps inside the mail on a phone, as one box a finger can hit.
            "pre a{display:inline-block;max-width:100%;overflow-wrap:anywhere}"
            ".meta{color:#555}</style>"
            "<h1>Development mailbox</h1>"
            "<p>Every mail Plugpay sent since it started (nothing leaves this machine; set "
            "<code>PLUGPAY_SMTP_URL</code> to send real mail). Reload for new ones. "
            "<a href='/'>Home</a></p>"
            + (items or "<p id=empty>No mail yet.</p>")
            + "</body></html>",
            headers=page_headers(INLINE_STYLE_CSP),
        )

    @app.get(f"{MAILBOX_PATH}.json")
    async def as_json() -> JSONResponse:
        mails: list[dict[str, Any]] = [
            {
                "to": list(m.to),
                "subject": m.subject,
                "text": m.text,
                "received_at": m.received_at.isoformat(),
                "attachments": [
                    {"filename": name, "content_type": kind, "url": _attachment_url(m, i)}
                    for i, (name, kind, _) in enumerate(m.attachments)
                ],
            }
            for m in mailbox.mails
        ]
        return JSONResponse(mails, headers={"Cache-Control": "no-store"})

    @app.get(MAILBOX_PATH + "/{number}/attachments/{index}")
    async def attachment(number: int, index: int) -> Response:
        for m in mailbox.mails:
            if m.number == number and 0 <= index < len(m.attachments):
                name, kind, data = m.attachments[index]
                return Response(
                    data,
                    media_type=kind,
                    headers={
                        "Content-Disposition": f'inline; filename="{name}"',
                        "Cache-Control": "no-store",
                    },
                )
        return Response("no such attachment", status_code=404, media_type="text/plain")

    return app
