"""Consumers' effects: decode → contact data / the mail to queue, in the inbox transaction
(`ConsumerSpec.transactional`), so each event queues its mail exactly once."""

from __future__ import annotations

from plugpay_events import Envelope, utc_now
from plugpay_events.outbox import EffectFn
from sqlalchemy.ext.asyncio import AsyncSession

from notification_svc import service
from notification_svc.repository import NotificationRepository
from notification_svc.service import MailContext

# Each its own group, each reading its topic from the start (contacts are rebuilt from the log;
# old events only teach, see MailContext.max_event_age).
IDENTITY_GROUP = "notification-svc.identity"
SESSIONS_GROUP = "notification-svc.sessions"
BILLING_GROUP = "notification-svc.billing"


def identity_handler(ctx: MailContext) -> EffectFn:
    async def on_identity_event(session: AsyncSession, envelope: Envelope) -> None:
        await service.learn_identity(ctx, NotificationRepository(session), envelope, utc_now())

    return on_identity_event


def sessions_handler(ctx: MailContext) -> EffectFn:
    async def on_session_event(session: AsyncSession, envelope: Envelope) -> None:
        # The receipt mail follows billing's InvoiceIssued (it carries the PDF), not
        # SessionBilled; here: whose a session is, and the mails about a held session.
        await service.session_event(ctx, NotificationRepository(session), envelope, utc_now())

    return on_session_event


def billing_handler(ctx: MailContext) -> EffectFn:
    async def on_billing_event(session: AsyncSession, envelope: Envelope) -> None:
        await service.billing_event(ctx, NotificationRepository(session), envelope, utc_now())

    return on_billing_event
