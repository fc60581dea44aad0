"""The development mailbox keeps a mail's attachments (an invoice's PDF) and serves them."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import httpx
from plugpay_app.devmail import DevSmtpServer, mailbox_app
from plugpay_testing import eventually

PDF = b"%PDF-1.4 an invoice"


async def test_attachments_are_listed_and_served() -> None:
    smtp = DevSmtpServer()
    await smtp.start()
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "p@x.test", "d@x.test", "Invoice"
        message.set_content("see the attachment")
        message.add_attachment(
            PDF, maintype="application", subtype="pdf", filename="invoice-INV-2026-000001.pdf"
        )
        await aiosmtplib.send(message, hostname=smtp.host, port=smtp.port)
        await eventually(lambda: list(smtp.mailbox.mails), what="the mail in the mailbox")
        transport = httpx.ASGITransport(app=mailbox_app(smtp.mailbox))
        async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
            [mail] = (await client.get("/dev/mailbox.json")).json()
            [attachment] = mail["attachments"]
            assert attachment["filename"] == "invoice-INV-2026-000001.pdf"
            served = await client.get(attachment["url"])
            assert served.content == PDF and served.headers["content-type"] == "application/pdf"
            page = (await client.get("/dev/mailbox")).text
            assert f"href='{attachment['url']}'" in page
            assert (await client.get("/dev/mailbox/999/attachments/0")).status_code == 404
    finally:
        await smtp.stop()
