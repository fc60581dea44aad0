"""Events as auth-svc, billing-svc and pricing/session producers write them."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta

from fpdf import FPDF
from plugpay_events.contracts.billing import (
    CreditNoteIssued,
    InvoiceIssued,
    TopUpFailed,
    WalletToppedUp,
)
from plugpay_events.contracts.identity import (
    EmailVerificationRequested,
    PasswordChanged,
    PasswordResetRequested,
    UserRegistered,
)
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


SELLER = "ACME Charging GmbH"
VAT_ID = "DE123456789"


def pdf_of(*lines: str) -> str:
    """A PDF as billing-svc publishes one (base64), with these lines of text."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    for line in lines:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return base64.b64encode(bytes(pdf.output())).decode("ascii")


def billed(
    user_id: uuid.UUID,
    *,
    charged: int = 1234,
    at: datetime | None = None,
    number: str = "ACME-2026-000001",
) -> InvoiceIssued:
    total = f"{charged // 100}.{charged % 100:02d} EUR"
    return InvoiceIssued(
        user_id=user_id,
        session_id=uuid.uuid4(),
        receipt_id=uuid.uuid4(),
        organisation_id=uuid.uuid4(),
        invoice_number=number,
        seller_name=SELLER,
        total=eur(charged),
        charged=eur(charged),
        wallet_charged=eur(charged),
        card_charged=eur(0),
        balance_after=eur(5000 - charged),
        issued_at=at or utc_now(),
        document_filename=f"invoice-{number}.pdf",
        document_pdf=pdf_of(
            f"Invoice {number}", SELLER, f"VAT id: {VAT_ID}", f"Total incl. VAT: {total}"
        ),
    )


def credit_note(
    user_id: uuid.UUID, *, amount: int = 300, number: str = "ACME-CN-2026-000001"
) -> CreditNoteIssued:
    return CreditNoteIssued(
        user_id=user_id,
        refund_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        organisation_id=uuid.uuid4(),
        credit_note_number=number,
        invoice_number="ACME-2026-000001",
        amount=eur(amount),
        reason="connector fault",
        destination="card",
        issued_at=utc_now(),
        document_filename=f"credit-note-{number}.pdf",
        document_pdf=pdf_of(f"Credit note {number}", SELLER, f"VAT id: {VAT_ID}"),
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
