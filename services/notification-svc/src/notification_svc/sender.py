"""The sender loop: claims due mails in a short transaction, sends each over SMTP outside any
transaction, and records the outcome in another. A failing mail is retried with exponential
back-off and never holds up the others (each is sent and recorded on its own)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from plugpay_events.types import utc_now
from plugpay_platform.background import PeriodicTask
from plugpay_platform.database import Database

from notification_svc import domain
from notification_svc.repository import NotificationRepository, QueuedMail
from notification_svc.settings import Settings

log = logging.getLogger(__name__)


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def build_message(mail: QueuedMail, sender: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now)
    # The same id on every retry: a receiving server or client can drop a duplicate that a
    # lost confirmation caused.
    domain_part = sender.rsplit("@", 1)[-1].strip("> ") or "plugpay.invalid"
    message["Message-ID"] = f"<mail-{mail.id}-{mail.event_id}@{domain_part}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text_body)
    if mail.html_body:
        message.add_alternative(mail.html_body, subtype="html")
    if mail.attachment is not None:
        message.add_attachment(
            mail.attachment,
            maintype="application",
            subtype="pdf",
            filename=mail.attachment_name or "document.pdf",
        )
    return message


class MailSender:
    """Delivers the mail queue until stopped."""

    def __init__(
        self,
        database: Database,
        transport: MailTransport,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        self.transport = transport
        self.settings = settings
        self.clock = clock
        # A round in flight is finished on stop (a mail sent but not recorded would be sent
        # again after its lease), within a grace; a full round means more may be due at once.
        self._rounds = PeriodicTask(
            "notification-svc mail sender",
            self.deliver_due,
            settings.poll_interval_s,
            busy_again=True,
            grace_s=35.0,
        )

    async def start(self) -> None:
        await self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def deliver_due(self) -> int:
        """One round: claim what is due, send each, record each; how many were claimed."""
        now = self.clock()
        lease_until = now + timedelta(seconds=self.settings.send_lease_s)
        async with self.database.write() as session:
            claimed = await NotificationRepository(session).claim_due(
                now, lease_until, self.settings.batch_size
            )
        # Each on its own: a slow or failing mail costs only its own time.
        await asyncio.gather(*(self._deliver(mail) for mail in claimed))
        return len(claimed)

    async def _deliver(self, mail: QueuedMail) -> None:
        try:
            message = build_message(mail, self.settings.mail_from, self.clock())
            await self.transport.send(message)
        except Exception as error:
            # The reason, never the message (it may hold a link's code).
            reason = f"{type(error).__name__}: {getattr(error, 'code', '')} {_short(error)}"
            settings = self.settings
            state, next_at = domain.after_failure(
                mail.attempts,
                settings.max_attempts,
                self.clock(),
                settings.retry_base_s,
                settings.retry_max_s,
            )
            async with self.database.write() as session:
                await NotificationRepository(session).mark_failed(mail.id, state, next_at, reason)
            log.warning(
                "%s mail %s: attempt %d failed (%s); %s",
                mail.kind,
                mail.id,
                mail.attempts,
                reason,
                "given up" if state == "failed" else f"next try at {next_at}",
            )
            return
        async with self.database.write() as session:
            await NotificationRepository(session).mark_sent(mail.id, self.clock())
        log.info("%s mail %s sent", mail.kind, mail.id)


def _short(error: Exception) -> str:
    text = str(getattr(error, "message", "") or error)
    return text.replace("\n", " ")[:200]
