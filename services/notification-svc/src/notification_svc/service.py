"""notification-svc's use cases. Each takes the caller's session and never commits: a mail is
queued in the transaction that claims its event in the inbox (handlers), and delivered later by
the sender loop (``sender.py``), outside any transaction."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from plugpay_events.contracts.billing import (
    CreditNoteIssued,
    InvoiceIssued,
    InvoiceMailRequested,
    PaymentMethodExpiring,
    TopUpFailed,
    WalletToppedUp,
)
from plugpay_events.contracts.identity import (
    EmailVerificationRequested,
    GroupInvitationRequested,
    PasswordChanged,
    PasswordResetRequested,
    UserRegistered,
    UserVerified,
)
from plugpay_events.contracts.sessions import SessionFlagged, SessionPriced, SessionReviewed
from plugpay_events.envelope import Envelope
from plugpay_events.sealed import SealError, open_sealed

from notification_svc import domain
from notification_svc.domain import MailKind
from notification_svc.repository import MailRecord, NotificationRepository
from notification_svc.templates import MailRenderer

log = logging.getLogger(__name__)


@dataclass
class MailContext:
    """What composing a mail needs besides the store: where links point, the key that opens
    sealed codes, the renderer, and how old an event may be to still be news."""

    public_base_url: str
    link_key: bytes
    max_event_age: timedelta = timedelta(days=2)
    renderer: MailRenderer = field(default_factory=MailRenderer)

    def link(self, fragment: str) -> str:
        return f"{self.public_base_url.rstrip('/')}/app/#/{fragment}"


def _when(at: datetime) -> str:
    # Contact data holds no time zone: UTC, said so, to the minute.
    return at.strftime("%Y-%m-%d %H:%M UTC")


NOT_WANTED = object()


def _address(to: str | object | None) -> str | None:
    return to if isinstance(to, str) else None


def _pdf(filename: str, encoded: str) -> tuple[str, bytes] | None:
    """The document an event carries, or None if it is not a PDF (the mail goes without)."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data.startswith(b"%PDF"):
        log.warning("document %s is not a PDF; mailed without it", filename)
        return None
    return filename, data


# The events that ask for a mail with a one-time link to the requester.
LinkRequest = EmailVerificationRequested | PasswordResetRequested | GroupInvitationRequested


@dataclass(frozen=True)
class _Mailing:
    """The mails one consumed event queues, and the contact data it teaches: each step needs
    the context, the store, the event's envelope and when it is handled."""

    ctx: MailContext
    store: NotificationRepository
    envelope: Envelope
    now: datetime

    def is_history(self) -> bool:
        return domain.is_history(self.envelope.occurred_at, self.now, self.ctx.max_event_age)

    async def queue(
        self,
        kind: MailKind,
        user_id: uuid.UUID,
        to_address: str | None,
        attachment: tuple[str, bytes] | None = None,
        **context: Any,
    ) -> bool:
        mail = self.ctx.renderer.render(kind, **context)
        event_id = self.envelope.event_id
        queued = await self.store.enqueue(
            event_id=event_id,
            kind=kind,
            user_id=user_id,
            to_address=to_address,
            subject=mail.subject,
            text_body=mail.text,
            html_body=mail.html,
            attachment=attachment,
        )
        if queued:
            log.info("%s mail queued for user %s (event %s)", kind, user_id, event_id)
        return queued

    def _code(self, sealed: str, user_id: uuid.UUID) -> str | None:
        envelope = self.envelope
        try:
            return open_sealed(self.ctx.link_key, sealed, f"{envelope.type}:{user_id}")
        except SealError:
            # Another installation's key or a forged event: nothing to mail (and nothing logged
            # of the sealed text).
            log.warning(
                "%s %s: its code cannot be opened; no mail", envelope.type, envelope.event_id
            )
            return None

    async def learn(self, user_id: uuid.UUID, email: str) -> None:
        await self.store.learn_email(
            user_id, email, self.envelope.occurred_at, self.now - self.ctx.max_event_age
        )

    async def queue_link(
        self, request: LinkRequest, kind: MailKind, path: str, **fields: Any
    ) -> None:
        """A mail carrying a one-time link (``{path}/{code}``), unless the link has expired or
        its sealed code cannot be opened."""
        if request.email is None or request.sealed_code is None or request.expires_at <= self.now:
            return  # no address or code: from before notification-svc
        code = self._code(request.sealed_code, request.user_id)
        if code is not None:
            await self.queue(
                kind, request.user_id, request.email,
                link=self.ctx.link(f"{path}/{code}"), expires=_when(request.expires_at), **fields,
            )  # fmt: skip

    async def to_contact(self, kind: MailKind, user_id: uuid.UUID) -> str | object | None:
        """The address a mail about money goes to; None when it is not known yet (the mail
        waits for it); NOT_WANTED for history or a mail the driver switched off."""
        if self.is_history():
            return NOT_WANTED
        contact = await self.store.contact_for_mail(user_id)
        if not domain.wanted(kind, contact):
            return NOT_WANTED
        return contact.email

    async def queue_if_wanted(
        self,
        kind: MailKind,
        user_id: uuid.UUID,
        attachment: tuple[str, bytes] | None = None,
        **context: Any,
    ) -> None:
        """A mail about money to the driver (``to_contact``), unless it is history or
        unwanted."""
        to = await self.to_contact(kind, user_id)
        if to is not NOT_WANTED:
            await self.queue(kind, user_id, _address(to), attachment, **context)

    async def invoice_issued(self, event: InvoiceIssued) -> None:
        """The receipt mail with the invoice's PDF attached, unless the driver switched
        receipts off."""
        to = await self.to_contact("receipt", event.user_id)
        if to is NOT_WANTED:
            return
        await self.queue_invoice(event, _address(to), event.issued_at)

    async def queue_invoice(
        self, event: InvoiceIssued | InvoiceMailRequested, to: str | None, at: datetime
    ) -> None:
        funding = []
        if event.wallet_charged.amount_minor:
            funding.append(f"From your wallet: {domain.format_money(event.wallet_charged)}")
        if event.card_charged.amount_minor:
            card = f"your card {event.card_label}" if event.card_label else "your card"
            funding.append(f"Charged to {card}: {domain.format_money(event.card_charged)}")
        if not funding:
            funding.append("Free of charge")
        if isinstance(event, InvoiceIssued) and event.balance_after is not None:
            funding.append(f"Wallet balance now: {domain.format_money(event.balance_after)}")
        await self.queue(
            "receipt", event.user_id, to,
            attachment=_pdf(event.document_filename, event.document_pdf),
            amount=domain.format_money(event.charged), funding=funding,
            billed=_when(at), session_id=str(event.session_id),
            invoice_number=event.invoice_number, seller=event.seller_name or "",
            total=domain.format_money(event.total),
            receipt_link=self.ctx.link(f"receipt/{event.session_id}"),
        )  # fmt: skip


# What each consumer acts on (``ConsumerSpec.transactional(handles=...)``): other events of
# its topic pass without a transaction. A branch added below needs its class here.
IDENTITY_EVENTS = (
    UserRegistered,
    UserVerified,
    EmailVerificationRequested,
    PasswordResetRequested,
    GroupInvitationRequested,
    PasswordChanged,
)
BILLING_EVENTS = (
    WalletToppedUp,
    TopUpFailed,
    InvoiceIssued,
    InvoiceMailRequested,
    PaymentMethodExpiring,
    CreditNoteIssued,
)
SESSION_EVENTS = (SessionPriced, SessionFlagged, SessionReviewed)


async def learn_identity(
    ctx: MailContext, store: NotificationRepository, envelope: Envelope, now: datetime
) -> None:
    """Contact data from auth-svc's events, and the mails they ask for."""
    mailing = _Mailing(ctx, store, envelope, now)
    event = envelope.event()
    if isinstance(event, UserRegistered):
        if event.email:
            await mailing.learn(event.user_id, event.email)
    elif isinstance(event, UserVerified):
        await store.mark_verified(event.user_id, envelope.occurred_at)
    elif isinstance(event, EmailVerificationRequested):
        if event.email is None or event.sealed_code is None:
            return  # from before notification-svc: nothing to mail
        await mailing.learn(event.user_id, event.email)
        await mailing.queue_link(event, "verify_email", "verify")
    elif isinstance(event, PasswordResetRequested):
        await mailing.learn(event.user_id, event.email)
        await mailing.queue_link(event, "password_reset", "reset")
    elif isinstance(event, GroupInvitationRequested):
        await mailing.queue_link(event, "group_invitation", "invitations", group=event.group)
    elif isinstance(event, PasswordChanged):
        await mailing.learn(event.user_id, event.email)
        if mailing.is_history():
            return
        await mailing.queue(
            "password_changed", event.user_id, event.email,
            changed=_when(event.changed_at), reset_link=ctx.link("reset"),
        )  # fmt: skip


async def billing_event(
    ctx: MailContext, store: NotificationRepository, envelope: Envelope, now: datetime
) -> None:
    """Top-ups done or declined, credit notes (refunds): always mailed (money moved or did
    not); invoices (the receipt mail, with its PDF) unless switched off."""
    mailing = _Mailing(ctx, store, envelope, now)
    event = envelope.event()
    if isinstance(event, WalletToppedUp):
        await mailing.queue_if_wanted(
            "top_up_done", event.user_id,
            amount=domain.format_money(event.amount), trigger=event.trigger,
            balance=domain.format_money(event.balance_after), at=_when(event.topped_up_at),
        )  # fmt: skip
    elif isinstance(event, TopUpFailed):
        await mailing.queue_if_wanted(
            "top_up_declined", event.user_id,
            amount=domain.format_money(event.amount), trigger=event.trigger,
            reason=event.reason, at=_when(event.failed_at), app_link=ctx.link("account"),
        )  # fmt: skip
    elif isinstance(event, InvoiceIssued):
        await mailing.invoice_issued(event)
    elif isinstance(event, InvoiceMailRequested):
        # Asked for by the payer at an address they typed (a guest has no account): mailed
        # there whatever the account's preferences, never to anyone else.
        if not mailing.is_history():
            await mailing.queue_invoice(event, event.email, event.requested_at)
    elif isinstance(event, PaymentMethodExpiring):
        expired = domain.card_expired(event.exp_month, event.exp_year, now)
        await mailing.queue_if_wanted(
            "card_expiring", event.user_id,
            card=f"{event.brand} •••• {event.last4}",
            expiry=f"{event.exp_month:02d}/{event.exp_year}", expired=expired,
            is_default=event.is_default, app_link=ctx.link("account"),
        )  # fmt: skip
    elif isinstance(event, CreditNoteIssued):
        await mailing.queue_if_wanted(
            "refund_issued", event.user_id,
            attachment=_pdf(event.document_filename, event.document_pdf),
            amount=domain.format_money(event.amount), session_id=str(event.session_id),
            reason=event.reason, at=_when(event.issued_at),
            credit_note_number=event.credit_note_number,
            invoice_number=event.invoice_number or "",
            destination="your wallet" if event.destination == "wallet" else "your card",
        )  # fmt: skip


# The gateway's judgement codes in words (an unknown code is shown as it is).
METER_REASONS = {
    "register_jump": "the meter jumped by more than the charger can deliver",
    "register_reset": "the meter was reset during the session",
    "energy_above_physical_bound": "more energy than the connector can deliver in that time",
    "stop_in_future": "the station's clock was ahead",
    "register_regression": "the meter ran backwards",
}


def _kwh(wh: int) -> str:
    return f"{wh / 1000:.3f} kWh"


async def session_event(
    ctx: MailContext, store: NotificationRepository, envelope: Envelope, now: datetime
) -> None:
    """Whose a session is (SessionPriced), and the mails about a held session: held for
    review (SessionFlagged) and the operator's decision (SessionReviewed). Always sent: they
    concern money."""
    mailing = _Mailing(ctx, store, envelope, now)
    event = envelope.event()
    if isinstance(event, SessionPriced):
        await store.learn_session(event.session_id, event.user_id, event.station_id)
    elif isinstance(event, SessionFlagged) and event.judgement.outcome == "held":
        # A correction by rule is flagged too; its receipt says so and nothing waits on anyone.
        user_id = await store.session_driver(event.session_id)
        if user_id is None:
            # Priced before notification-svc knew sessions: no one to write to.
            log.warning("SessionFlagged %s: the session's driver is unknown", event.session_id)
            return
        judgement = event.judgement
        await mailing.queue_if_wanted(
            "session_held", user_id,
            station_id=event.station_id, at=_when(event.flagged_at),
            claimed=_kwh(judgement.claimed.energy_wh), billed=_kwh(event.billed_energy_wh),
            reasons=[METER_REASONS.get(r, r.replace("_", " ")) for r in judgement.reasons],
            receipt_link=ctx.link(f"receipt/{event.session_id}"),
        )  # fmt: skip
    elif isinstance(event, SessionReviewed):
        to = await mailing.to_contact("session_reviewed", event.user_id)
        if to is not NOT_WANTED:
            station = await store.session_station(event.session_id)
            voided = event.decision == "voided"
            await mailing.queue(
                "session_reviewed", event.user_id, _address(to),
                station_id=station or "the station",
                outcome="voided" if voided else f"{domain.format_money(event.approved_total)}",
                voided=voided, total=domain.format_money(event.approved_total),
                billed_before=domain.format_money(event.billed_before),
                charged=domain.format_money(event.charged) if event.charged.amount_minor else "",
                refunded=domain.format_money(event.refunded) if event.refunded.amount_minor else "",
                note=event.note, at=_when(event.reviewed_at),
                receipt_link=ctx.link(f"receipt/{event.session_id}"),
            )  # fmt: skip


# --- the driver's API ------------------------------------------------------------------------


async def preferences(store: NotificationRepository, user_id: uuid.UUID) -> domain.Contact:
    return await store.contact(user_id) or domain.Contact(str(user_id), None)


async def set_receipts(
    store: NotificationRepository, user_id: uuid.UUID, receipts: bool, now: datetime
) -> domain.Contact:
    await store.set_receipts(user_id, receipts, now)
    return await preferences(store, user_id)


async def delivery_log(store: NotificationRepository, user_id: uuid.UUID) -> list[MailRecord]:
    return await store.mails_of(user_id)
