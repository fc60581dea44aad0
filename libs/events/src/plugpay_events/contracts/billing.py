"""Wallet and payment events, owned by billing-svc, keyed by user id on ``plugpay.billing``."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from plugpay_events.envelope import Event
from plugpay_events.registry import register
from plugpay_events.topics import BILLING
from plugpay_events.types import Money, UtcDatetime

__all__ = [
    "AutoTopUpConfigured",
    "CreditNoteIssued",
    "InvoiceIssued",
    "InvoiceMailRequested",
    "PaymentMethodAdded",
    "PaymentMethodExpiring",
    "PaymentMethodRemoved",
    "RefundIssued",
    "TopUpFailed",
    "WalletToppedUp",
]


class _AccountEvent(Event):
    topic = BILLING
    aggregate_field = "user_id"
    user_id: uuid.UUID


class _TopUpEvent(_AccountEvent):
    """How a top-up of the wallet ended."""

    topup_id: uuid.UUID
    amount: Money
    trigger: Literal["manual", "auto"]


@register
class WalletToppedUp(_TopUpEvent):
    """Money moved from a card into the prepaid wallet."""

    type = "WalletToppedUp"
    balance_after: Money
    topped_up_at: UtcDatetime


@register
class TopUpFailed(_TopUpEvent):
    """A top-up was declined by the processor."""

    type = "TopUpFailed"
    reason: str
    failed_at: UtcDatetime


class _CardEvent(_AccountEvent):
    """A saved card, as people recognise it (never its number)."""

    payment_method_id: uuid.UUID
    brand: str
    last4: str = Field(pattern=r"^\d{4}$")


@register
class PaymentMethodAdded(_CardEvent):
    """A processor token (never a card number) was saved."""

    type = "PaymentMethodAdded"
    added_at: UtcDatetime


@register
class PaymentMethodExpiring(_CardEvent):
    """A saved card expires within the notice period (or has expired): once per card."""

    type = "PaymentMethodExpiring"
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=9999)
    is_default: bool
    noticed_at: UtcDatetime


@register
class PaymentMethodRemoved(_AccountEvent):
    """A saved payment method was removed."""

    type = "PaymentMethodRemoved"
    payment_method_id: uuid.UUID
    removed_at: UtcDatetime


@register
class AutoTopUpConfigured(_AccountEvent):
    """Top up ``amount`` when the balance falls below ``threshold``."""

    type = "AutoTopUpConfigured"
    enabled: bool
    threshold: Money
    amount: Money
    payment_method_id: uuid.UUID | None
    configured_at: UtcDatetime


@register
class RefundIssued(_AccountEvent):
    """An operator refunded (part of) a session, with a reason, audited."""

    type = "RefundIssued"
    refund_id: uuid.UUID
    session_id: uuid.UUID
    amount: Money
    reason: str = Field(min_length=3)
    issued_by: uuid.UUID
    issued_at: UtcDatetime


# A rendered document rides in its event (base64 PDF, a few kB) so the mail that carries it is
# queued from the event alone, exactly once, with no call back to billing-svc.
DOCUMENT_PDF_MAX_CHARS = 700_000


@register
class InvoiceIssued(_AccountEvent):
    """A billed session's invoice (its receipt), numbered in the seller's gapless yearly
    series, with the PDF as issued; ``charged`` split into wallet and card."""

    type = "InvoiceIssued"
    session_id: uuid.UUID
    receipt_id: uuid.UUID
    organisation_id: uuid.UUID
    invoice_number: str = Field(min_length=1, max_length=40)
    seller_name: str | None = None
    total: Money
    charged: Money
    wallet_charged: Money
    card_charged: Money
    card_label: str | None = Field(default=None, max_length=60)
    balance_after: Money | None = None
    issued_at: UtcDatetime
    document_filename: str = Field(max_length=120)
    document_pdf: str = Field(max_length=DOCUMENT_PDF_MAX_CHARS, description="base64 PDF")


@register
class InvoiceMailRequested(_AccountEvent):
    """The payer asked for a session's invoice at an address they typed (a guest has no
    account to mail it to); the PDF as it stands, naming the buyer's VAT id when given."""

    type = "InvoiceMailRequested"
    session_id: uuid.UUID
    invoice_number: str = Field(min_length=1, max_length=40)
    email: str = Field(min_length=3, max_length=254)
    seller_name: str | None = None
    total: Money
    charged: Money
    wallet_charged: Money
    card_charged: Money
    card_label: str | None = Field(default=None, max_length=60)
    requested_at: UtcDatetime
    document_filename: str = Field(max_length=120)
    document_pdf: str = Field(max_length=DOCUMENT_PDF_MAX_CHARS, description="base64 PDF")


@register
class CreditNoteIssued(_AccountEvent):
    """A posted refund's credit note, numbered in the seller's credit-note series, with the
    PDF as issued; it corrects the session's invoice."""

    type = "CreditNoteIssued"
    refund_id: uuid.UUID
    session_id: uuid.UUID
    organisation_id: uuid.UUID
    credit_note_number: str = Field(min_length=1, max_length=40)
    invoice_number: str | None = None
    amount: Money
    reason: str
    destination: Literal["wallet", "card"]
    issued_at: UtcDatetime
    document_filename: str = Field(max_length=120)
    document_pdf: str = Field(max_length=DOCUMENT_PDF_MAX_CHARS, description="base64 PDF")
