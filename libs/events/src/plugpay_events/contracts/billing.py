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
    "PaymentMethodAdded",
    "PaymentMethodRemoved",
    "RefundIssued",
    "TopUpFailed",
    "WalletToppedUp",
]


class _AccountEvent(Event):
    topic = BILLING
    aggregate_field = "user_id"
    user_id: uuid.UUID


@register
class WalletToppedUp(_AccountEvent):
    """Money moved from a card into the prepaid wallet."""

    type = "WalletToppedUp"
    topup_id: uuid.UUID
    amount: Money
    trigger: Literal["manual", "auto"]
    balance_after: Money
    topped_up_at: UtcDatetime


@register
class TopUpFailed(_AccountEvent):
    """A top-up was declined by the processor."""

    type = "TopUpFailed"
    topup_id: uuid.UUID
    amount: Money
    trigger: Literal["manual", "auto"]
    reason: str
    failed_at: UtcDatetime


@register
class PaymentMethodAdded(_AccountEvent):
    """A processor token (never a card number) was saved."""

    type = "PaymentMethodAdded"
    payment_method_id: uuid.UUID
    brand: str
    last4: str = Field(pattern=r"^\d{4}$")
    added_at: UtcDatetime


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
