"""Events as auth-svc, billing-svc and pricing/session producers write them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from plugpay_events.contracts.billing import TopUpFailed, WalletToppedUp
from plugpay_events.contracts.identity import (
    EmailVerificationRequested,
    PasswordChanged,
    PasswordResetRequested,
    UserRegistered,
)
from plugpay_events.contracts.sessions import SessionBilled
from plugpay_events.sealed import DEVELOPMENT_KEY, seal
from plugpay_events.types import Money, utc_now


def eur(minor: int) -> Money:
    return Money(amount_minor=minor, currency="EUR")


def registered(user_id: uuid.UUID, email: str) -> UserRegistered:
    return UserRegistered(user_id=user_id, roles=("driver",), registered_at=utc_now(), email=email)


def verification(
    user_id: uuid.UUID, email: str, code: str, *, expires_in: timedelta = timedelta(hours=24)
) -> EmailVerificationRequested:
    return EmailVerificationRequested(
        user_id=user_id,
        email=email,
        expires_at=utc_now() + expires_in,
        sealed_code=seal(DEVELOPMENT_KEY, code, f"EmailVerificationRequested:{user_id}"),
    )


def reset(user_id: uuid.UUID, email: str, code: str) -> PasswordResetRequested:
    return PasswordResetRequested(
        user_id=user_id,
        email=email,
        expires_at=utc_now() + timedelta(minutes=30),
        sealed_code=seal(DEVELOPMENT_KEY, code, f"PasswordResetRequested:{user_id}"),
    )


def changed(user_id: uuid.UUID, email: str) -> PasswordChanged:
    return PasswordChanged(user_id=user_id, email=email, changed_at=utc_now())


def billed(user_id: uuid.UUID, *, charged: int = 1234, at: datetime | None = None) -> SessionBilled:
    return SessionBilled(
        session_id=uuid.uuid4(),
        user_id=user_id,
        receipt_id=uuid.uuid4(),
        charged=eur(charged),
        funding="wallet",
        balance_after=eur(5000 - charged),
        billed_at=at or utc_now(),
        wallet_charged=eur(charged),
    )


def topped_up(user_id: uuid.UUID) -> WalletToppedUp:
    return WalletToppedUp(
        user_id=user_id,
        topup_id=uuid.uuid4(),
        amount=eur(2000),
        trigger="manual",
        balance_after=eur(2500),
        topped_up_at=utc_now(),
    )


def top_up_failed(user_id: uuid.UUID) -> TopUpFailed:
    return TopUpFailed(
        user_id=user_id,
        topup_id=uuid.uuid4(),
        amount=eur(2000),
        trigger="auto",
        reason="payment_declined",
        failed_at=utc_now(),
    )
