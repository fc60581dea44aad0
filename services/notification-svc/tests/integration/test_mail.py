"""Events in, mail out through a real SMTP server: what arrives, once, and what never does."""

from __future__ import annotations

import io
import logging
import re
import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from notification_svc.tables import mails
from plugpay_events import Envelope
from plugpay_events.contracts.billing import InvoiceMailRequested
from plugpay_events.types import utc_now
from plugpay_testing import eventually
from plugpay_testing.tokens import TokenFactory
from pypdf import PdfReader
from sqlalchemy import select

from ..events import (
    SELLER,
    VAT_ID,
    billed,
    changed,
    credit_note,
    registered,
    reset,
    top_up_failed,
    topped_up,
    verification,
)
from ..smtp_server import SmtpServer
from .conftest import build_app, publish, running

pytestmark = pytest.mark.infra

CODE = "Zq3-verification-code-of-43-characters_AbCd"


async def mail_rows(app: FastAPI) -> list[dict[str, object]]:
    async with app.state.runtime.database.read() as session:
        rows = await session.execute(select(mails).order_by(mails.c.id))
        return [dict(r._mapping) for r in rows.all()]


async def handled(app: FastAPI, group: str, envelope: Envelope) -> bool:
    """True once ``group`` has claimed the event in its inbox (its effect committed)."""
    inbox = app.state.runtime.outbox_tables.inbox
    async with app.state.runtime.database.read() as session:
        row = await session.execute(
            select(inbox.c.event_id).where(
                inbox.c.consumer.endswith(group), inbox.c.event_id == envelope.event_id
            )
        )
        return row.first() is not None


async def test_a_verification_request_mails_the_link_once_text_and_html(
    app: FastAPI, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = uuid.uuid4()
    (envelope,) = await publish(app, verification(user, "vera@example.com", CODE))
    (mail,) = await eventually(lambda: smtp.mailbox.to("vera@example.com"))
    assert mail.message["From"] == "Plugpay <no-reply@plugpay.test>"
    assert mail.message["Subject"] == "Confirm your e-mail address for Plugpay"
    link = f"https://plugpay.test/app/#/verify/{CODE}"
    assert link in mail.text
    assert f'href="{link}"' in mail.html
    assert mail.message["Message-ID"].startswith("<mail-")
    # The same event again (a redelivery) sends nothing more.
    await publish(app, envelope)
    sentinel = await publish(app, verification(user, "vera@example.com", CODE + "x"))
    await eventually(lambda: len(smtp.mailbox.to("vera@example.com")) == 2)
    assert await handled(app, "notification-svc.identity", sentinel[0])
    assert len(smtp.mailbox.to("vera@example.com")) == 2
    # Once sent, the body (and its code) is gone from the database; the log row stays.
    rows = await eventually(
        lambda: _all_sent(app), what="the delivery log records both mails as sent"
    )
    assert [(r["kind"], r["text_body"], r["html_body"]) for r in rows] == [
        ("verify_email", None, None)
    ] * 2
    # (aiosmtpd's own "mail.log" is the receiving server's, which has to see the mail.)
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    assert ours and not [line for line in ours if CODE in line]


async def _all_sent(app: FastAPI) -> list[dict[str, object]] | None:
    rows = await mail_rows(app)
    return rows if rows and all(r["state"] == "sent" for r in rows) else None


async def test_reset_and_changed_mails(app: FastAPI, smtp: SmtpServer) -> None:
    user = uuid.uuid4()
    await publish(app, reset(user, "rosa@example.com", CODE))
    (mail,) = await eventually(lambda: smtp.mailbox.to("rosa@example.com"))
    assert f"https://plugpay.test/app/#/reset/{CODE}" in mail.text
    await publish(app, changed(user, "rosa@example.com"))
    await eventually(lambda: len(smtp.mailbox.to("rosa@example.com")) == 2)
    notice = smtp.mailbox.to("rosa@example.com")[1]
    assert notice.message["Subject"] == "Your Plugpay password was changed"
    assert "every device was signed out" in notice.text


async def test_receipts_go_to_the_learned_address_until_switched_off(
    app: FastAPI, smtp: SmtpServer, client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    user = uuid.uuid4()
    headers = tokens.headers(sub=str(user), roles=("driver",))
    await publish(app, registered(user, "rita@example.com"))
    first = billed(user, charged=1234)
    await publish(app, first)
    (receipt,) = await eventually(lambda: smtp.mailbox.to("rita@example.com"))
    assert receipt.message["Subject"] == "Your Plugpay invoice ACME-2026-000001: 12.34 EUR"
    assert "From your wallet: 12.34 EUR" in receipt.text
    assert f"https://plugpay.test/app/#/receipt/{first.session_id}" in receipt.text

    prefs = await client.get("/notifications/preferences", headers=headers)
    assert prefs.json() == {"receipts": True, "email": "rita@example.com"}
    off = await client.put("/notifications/preferences", headers=headers, json={"receipts": False})
    assert off.status_code == 200 and off.json()["receipts"] is False
    (quiet,) = await publish(app, billed(user))
    await eventually(lambda: handled(app, "notification-svc.billing", quiet))
    # Money moved without a session is always mailed.
    await publish(app, topped_up(user), top_up_failed(user))
    await eventually(lambda: len(smtp.mailbox.to("rita@example.com")) == 3)
    subjects = sorted(m.message["Subject"] for m in smtp.mailbox.to("rita@example.com"))
    assert subjects == [
        "Your Plugpay invoice ACME-2026-000001: 12.34 EUR",
        "Your Plugpay top-up of 20.00 EUR was declined",
        "Your Plugpay wallet was topped up: 20.00 EUR",
    ]
    log = (await client.get("/notifications/mails", headers=headers)).json()
    assert {e["kind"] for e in log} == {"receipt", "top_up_done", "top_up_declined"}
    assert {e["to"] for e in log} == {"rita@example.com"}
    bad = await client.put("/notifications/preferences", headers=headers, json={"receipts": "x"})
    assert bad.status_code == 422
    assert (await client.get("/notifications/preferences")).status_code == 401


async def test_history_and_expired_links_send_nothing(app: FastAPI, smtp: SmtpServer) -> None:
    user = uuid.uuid4()
    old = Envelope.wrap(billed(user), producer="test", occurred_at=utc_now() - timedelta(days=30))
    _, expired = await publish(
        app,
        registered(user, "hana@example.com"),
        verification(user, "hana@example.com", CODE, expires_in=timedelta(seconds=-1)),
    )
    await publish(app, old)
    await eventually(lambda: handled(app, "notification-svc.billing", old))
    await eventually(lambda: handled(app, "notification-svc.identity", expired))
    assert await mail_rows(app) == []
    assert smtp.mailbox.received == []


async def test_a_failing_mail_is_retried_with_back_off_and_blocks_no_other(
    database_url: str, topic_prefix: str, tokens: TokenFactory, smtp: SmtpServer
) -> None:
    app = build_app(database_url, topic_prefix, tokens, smtp.url, retry_base_s=0.05, max_attempts=3)
    async with running(app):
        await publish(app, verification(uuid.uuid4(), "bounce@example.com", CODE))
        await eventually(lambda: _state_of(app, "bounce@example.com", "failed"), within=30)
        await publish(app, verification(uuid.uuid4(), "ok@example.com", CODE))
        await eventually(lambda: smtp.mailbox.to("ok@example.com"))
    (bounced,) = [r for r in await mail_rows(app) if r["to_address"] == "bounce@example.com"]
    assert bounced["attempts"] == 3
    assert "550" in str(bounced["last_error"])
    assert bounced["text_body"] is None  # given up: the code is not kept either


async def _state_of(app: FastAPI, to: str, state: str) -> bool:
    return any(r["to_address"] == to and r["state"] == state for r in await mail_rows(app))


async def test_mail_waits_for_a_server_that_is_down_and_arrives_once(
    database_url: str, topic_prefix: str, tokens: TokenFactory
) -> None:
    async with SmtpServer() as probe:
        port = probe.port  # a free port, closed again: nothing listens there now
    app = build_app(
        database_url, topic_prefix, tokens, f"smtp://127.0.0.1:{port}", retry_base_s=0.2
    )
    async with running(app):
        await publish(app, verification(uuid.uuid4(), "dora@example.com", CODE))
        failed = await eventually(lambda: _attempted(app))
        assert "Connect" in str(failed["last_error"]) or "onnect" in str(failed["last_error"])
        async with SmtpServer(port=port) as smtp:
            await eventually(lambda: smtp.mailbox.to("dora@example.com"), within=30)
            await eventually(lambda: _all_sent(app))
            assert len(smtp.mailbox.received) == 1


async def _attempted(app: FastAPI) -> dict[str, object] | None:
    rows = [r for r in await mail_rows(app) if r["last_error"]]
    return rows[0] if rows else None


def _links(text: str) -> list[str]:
    return re.findall(r"https://\S+", text)


async def test_without_a_mail_server_development_keeps_mail_queued(
    database_url: str, topic_prefix: str, tokens: TokenFactory
) -> None:
    app = build_app(database_url, topic_prefix, tokens, "")
    async with running(app):
        assert app.state.mail_sender is None
        await publish(app, verification(uuid.uuid4(), "quinn@example.com", CODE))
        (row,) = await eventually(lambda: mail_rows(app))
    assert (row["state"], row["attempts"], row["to_address"]) == ("queued", 0, "quinn@example.com")


async def test_a_receipt_before_the_address_waits_for_it(app: FastAPI, smtp: SmtpServer) -> None:
    user = uuid.uuid4()
    (early,) = await publish(app, billed(user, charged=500))
    await eventually(lambda: handled(app, "notification-svc.billing", early))
    (row,) = await mail_rows(app)
    assert (row["state"], row["to_address"]) == ("awaiting_address", None)
    await publish(app, registered(user, "wim@example.com"))
    (receipt,) = await eventually(lambda: smtp.mailbox.to("wim@example.com"))
    assert receipt.message["Subject"] == "Your Plugpay invoice ACME-2026-000001: 5.00 EUR"


def _attachment(mail: object) -> tuple[str, str]:
    """The mail's one PDF attachment: its file name and its text (read back with pypdf)."""
    message = mail.message  # type: ignore[attr-defined]
    [part] = list(message.iter_attachments())
    assert part.get_content_type() == "application/pdf"
    reader = PdfReader(io.BytesIO(part.get_content()))
    text = " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
    return part.get_filename(), text


async def test_the_receipt_carries_the_invoice_pdf_and_a_refund_its_credit_note(
    app: FastAPI, smtp: SmtpServer
) -> None:
    user = uuid.uuid4()
    await publish(app, registered(user, "bea@example.com"), billed(user, charged=1234))
    (receipt,) = await eventually(lambda: smtp.mailbox.to("bea@example.com"))
    assert "Invoice:        ACME-2026-000001 from ACME Charging GmbH" in receipt.text
    name, text = _attachment(receipt)
    assert name == "invoice-ACME-2026-000001.pdf"
    for expected in ("Invoice ACME-2026-000001", SELLER, VAT_ID, "Total incl. VAT: 12.34 EUR"):
        assert expected in text, (expected, text)

    await publish(app, credit_note(user, amount=300))
    await eventually(lambda: len(smtp.mailbox.to("bea@example.com")) == 2)
    refund = smtp.mailbox.to("bea@example.com")[1]
    assert refund.message["Subject"] == "Plugpay refunded 3.00 EUR: credit note ACME-CN-2026-000001"
    assert "corrects invoice ACME-2026-000001" in refund.text and "to your card" in refund.text
    name, text = _attachment(refund)
    assert name == "credit-note-ACME-CN-2026-000001.pdf"
    assert "Credit note ACME-CN-2026-000001" in text and VAT_ID in text

    # Sent: the queue keeps the delivery log, not the document.
    async def both_sent() -> list[dict[str, object]] | None:
        rows = await mail_rows(app)
        return rows if [r["state"] for r in rows] == ["sent", "sent"] else None

    rows = await eventually(both_sent, what="both mails recorded as sent")
    assert all(r["attachment"] is None and r["text_body"] is None for r in rows)


async def test_an_invoice_asked_for_goes_to_the_typed_address_of_a_guest(
    app: FastAPI, smtp: SmtpServer
) -> None:
    """A guest (no account, so no learned address) asks for its invoice at an address it
    typed: the mail goes there with the PDF, and to no one else."""
    guest = uuid.uuid4()
    issued = billed(guest, charged=333)
    asked = InvoiceMailRequested(
        user_id=guest,
        session_id=issued.session_id,
        invoice_number=issued.invoice_number,
        email="fleet@business.example",
        seller_name=SELLER,
        total=issued.total,
        charged=issued.charged,
        wallet_charged=issued.card_charged,
        card_charged=issued.charged,
        card_label="visa •••• 4242",
        requested_at=utc_now(),
        document_filename=issued.document_filename,
        document_pdf=issued.document_pdf,
    )
    await publish(app, issued, asked)
    (mail,) = await eventually(lambda: smtp.mailbox.to("fleet@business.example"))
    assert "Invoice:        ACME-2026-000001 from ACME Charging GmbH" in mail.text
    assert "visa •••• 4242" in mail.text
    name, text = _attachment(mail)
    assert name == "invoice-ACME-2026-000001.pdf" and "Total incl. VAT: 3.33 EUR" in text
    # the InvoiceIssued of an account-less payer waits for an address that never comes
    rows = await eventually(lambda: mail_rows_if(app, 2), what="both mails in the queue, one sent")
    assert sorted(str(r["to_address"]) for r in rows) == ["None", "fleet@business.example"]


async def mail_rows_if(app: FastAPI, n: int) -> list[dict[str, object]] | None:
    rows = await mail_rows(app)
    return rows if len(rows) >= n else None
