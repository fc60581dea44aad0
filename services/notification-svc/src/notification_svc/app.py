"""The composition root of notification-svc: settings in, a running app out."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Unpack

from fastapi import FastAPI
from plugpay_events.topics import BILLING, IDENTITY, SESSIONS
from plugpay_platform.app import ServiceDefinition, Wiring
from plugpay_platform.runtime import ConsumerSpec, ServiceRuntime

from notification_svc import handlers
from notification_svc.endpoints import router
from notification_svc.sender import MailSender, MailTransport
from notification_svc.service import (
    BILLING_EVENTS,
    IDENTITY_EVENTS,
    SESSION_EVENTS,
    MailContext,
)
from notification_svc.settings import Settings
from notification_svc.smtp import SmtpSender
from notification_svc.tables import outbox_tables

NAME = "notification-svc"
PREFIX = "/notifications"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = ServiceDefinition(NAME, PREFIX, MIGRATIONS, outbox_tables)
log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    transport: MailTransport | None = None,
    **wiring: Unpack[Wiring],
) -> FastAPI:
    """Build notification-svc: consumers that queue mail, the sender loop that delivers it
    (over ``PLUGPAY_SMTP_URL``, or ``transport``), and the driver's preferences API."""
    settings = settings or Settings()
    runtime = SERVICE.runtime(settings, **wiring)
    ctx = MailContext(
        public_base_url=settings.platform.public_base_url,
        link_key=settings.platform.link_key(),
        max_event_age=timedelta(seconds=settings.max_event_age_s),
    )
    sessions = runtime.database.sessions
    for group, topic, effect, handles in (
        (handlers.IDENTITY_GROUP, IDENTITY, handlers.identity_handler(ctx), IDENTITY_EVENTS),
        (handlers.SESSIONS_GROUP, SESSIONS, handlers.sessions_handler(ctx), SESSION_EVENTS),
        (handlers.BILLING_GROUP, BILLING, handlers.billing_handler(ctx), BILLING_EVENTS),
    ):
        runtime.consume(
            ConsumerSpec.transactional(
                group, [topic], sessions, outbox_tables, effect, handles=handles
            )
        )

    target = settings.smtp_target()
    if transport is None and target is not None:
        transport = SmtpSender(target)
    if transport is None:
        # Development without a mail server (production refuses to start): mail is queued
        # and kept, and goes out once the service runs with PLUGPAY_SMTP_URL.
        log.warning("PLUGPAY_SMTP_URL is not set: mail is queued, not sent")
        return _finish(runtime, None)
    sender = MailSender(runtime.database, transport, settings)
    runtime.on_start.append(sender.start)
    runtime.on_stop.append(sender.stop)
    return _finish(runtime, sender)


def _finish(runtime: ServiceRuntime, sender: MailSender | None) -> FastAPI:
    app = SERVICE.app(runtime, [router])
    app.state.mail_sender = sender
    return app
