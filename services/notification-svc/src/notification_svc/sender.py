"""The sender loop: claims due mails in a short transaction, sends each over SMTP outside any
transaction, and records the outcome in another. A failing mail is retried with exponential
back-off and never holds up the others (each is sent and recorded on its own)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from plugpay_events.types import utc_now
from plugpay_platform.database import Database

from notification_svc import domain
from notification_svc.repository import NotificationRepository, QueuedMail

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
        *,
        sender: str,
        poll_interval_s: float = 0.5,
        batch_size: int = 20,
        lease: timedelta = timedelta(minutes=2),
        max_attempts: int = 12,
        retry_base_s: float = 2.0,
        retry_max_s: float = 3600.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        self.transport = transport
        self.sender = sender
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.lease = lease
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="notification-svc mail sender")

    async def stop(self, grace_s: float = 35.0) -> None:
        """Finish the round in flight (a mail sent but not recorded would be sent again after
        its lease), then stop; cancelled after ``grace_s``."""
        if self._task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(self._task, grace_s)
        except TimeoutError:
            log.warning("mail sender did not finish its round in %ss; cancelled", grace_s)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = await self.deliver_due()
            except Exception:
                log.exception("mail sender round failed; trying again")
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_interval_s)

    async def deliver_due(self) -> int:
        """One round: claim what is due, send each, record each; how many were claimed."""
        now = self.clock()
        async with self.database.write() as session:
            claimed = await NotificationRepository(session).claim_due(
                now, now + self.lease, self.batch_size
            )
        # Each on its own: a slow or failing mail costs only its own time.
        await asyncio.gather(*(self._deliver(mail) for mail in claimed))
        return len(claimed)

    async def _deliver(self, mail: QueuedMail) -> None:
        try:
            await self.transport.send(build_message(mail, self.sender, self.clock()))
        except Exception as error:
            # The reason, never the message (it may hold a link's code).
            reason = f"{type(error).__name__}: {getattr(error, 'code', '')} {_short(error)}"
            state, next_at = domain.after_failure(
                mail.attempts, self.max_attempts, self.clock(), self.retry_base_s, self.retry_max_s
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
