"""Request and response bodies of billing-svc's API (never ORM rows, never events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from plugpay_events.types import CurrencyCode, Money
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from billing_svc.domain import BIGINT_MAX


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


MinorUnits = Annotated[StrictInt, Field(ge=0, le=BIGINT_MAX)]
"""An amount a client sends: a JSON integer (no true, no "100") that fits a bigint column."""


class MoneyIn(_In):
    """Money in a request: strict, non-negative, bounded (``Money`` is the lenient wire type)."""

    amount_minor: MinorUnits
    currency: CurrencyCode

    def money(self) -> Money:
        return Money(amount_minor=self.amount_minor, currency=self.currency)


class TopUpRequest(_In):
    amount: MoneyIn
    payment_method_id: uuid.UUID | None = None


class TopUpResponse(BaseModel):
    topup_id: uuid.UUID
    status: Literal["succeeded", "failed"]
    amount: Money
    balance_after: Money
    failure_reason: str | None = None


class MailInvoiceRequest(_In):
    """Where the payer wants their invoice, and their VAT id for a business invoice."""

    email: str = Field(min_length=3, max_length=254)
    vat_id: str = Field(default="", max_length=30)


class AddPaymentMethodRequest(_In):
    token: str = Field(
        min_length=3,
        max_length=200,
        pattern=r"^(pm|tok|card|src)_[A-Za-z0-9_]+$",
        description="a processor token (pm_...), never a card number",
    )


class PaymentMethodView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None
    is_default: bool


class AutoTopUpRequest(_In):
    enabled: bool
    threshold: MoneyIn
    amount: MoneyIn
    payment_method_id: uuid.UUID | None = None


class AutoTopUpView(BaseModel):
    enabled: bool
    threshold: Money
    amount: Money
    payment_method_id: uuid.UUID | None


class FundingPreferenceRequest(_In):
    prefers_card: bool


class HoldView(BaseModel):
    hold_id: uuid.UUID
    session_id: str | None
    amount: Money
    expires_at: datetime | None


class AccountView(BaseModel):
    user_id: uuid.UUID
    currency: str
    balance: Money
    held: Money
    available: Money
    debt: Money
    holds: list[HoldView]
    prefers_card: bool
    auto_topup: AutoTopUpView
    payment_methods: list[PaymentMethodView]


class LedgerLine(BaseModel):
    seq: int
    at: datetime
    kind: str
    reference: str | None
    amount: Money  # change of the posted balance (negative: money out)
    held_change: Money
    balance_after: Money
    available_after: Money


class LedgerPage(BaseModel):
    currency: str
    lines: list[LedgerLine]
    next_before: int | None


class RefundRequest(_In):
    session_id: uuid.UUID
    amount: MoneyIn
    reason: str = Field(min_length=3, max_length=500)


class LegalProfileRequest(_In):
    """What an organisation's invoices say about the seller."""

    legal_name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=1000)
    vat_id: str = Field(default="", max_length=30)
    invoice_prefix: str = Field(default="INV", min_length=1, max_length=10)


class LegalProfileView(BaseModel):
    organisation_id: uuid.UUID
    legal_name: str
    address: str
    vat_id: str
    invoice_prefix: str
    updated_at: datetime | None


class RefundView(BaseModel):
    refund_id: uuid.UUID
    amount: Money
    destination: Literal["wallet", "card"]
    # Shown to the driver on the receipt.
    reason: str
    # pending: at the card processor (the amount is reserved); done; failed (nothing moved)
    status: Literal["pending", "done", "failed"]
    issued_at: datetime


class SessionRefunds(BaseModel):
    session_id: uuid.UUID
    charged: Money
    # What a new refund may still give back: charged minus done and pending refunds.
    refundable: Money
    # Where a new refund goes: the card the session was paid by, else the wallet.
    destination: Literal["wallet", "card"]
    refunds: list[RefundView]


class StationRevenue(BaseModel):
    station_id: str
    currency: str
    sessions: int
    energy_wh: int
    revenue_excl_vat: Money
    vat: Money
    total_incl_vat: Money
    refunded: Money
    outstanding_debt: Money
    # Billed sessions held for an operator's review: not in the figures above until decided.
    pending_review_sessions: int = 0
    pending_review: Money | None = None


class RevenueReport(BaseModel):
    organisation_id: uuid.UUID
    period_start: datetime
    period_end: datetime
    stations: list[StationRevenue]


class ReviewDecisionRequest(_In):
    """``approve``: the session is billed ``amount`` in total (at most what the driver
    authorised); ``void``: it is billed nothing (``amount`` must be absent)."""

    decision: Literal["approve", "void"]
    amount: MoneyIn | None = None
    note: str = Field(default="", max_length=500)


class SessionReview(BaseModel):
    """A session held for review (or corrected by rule), with the evidence an operator decides on
    or answers a driver from."""

    session_id: uuid.UUID
    station_id: str
    status: Literal["pending", "approved", "voided", "corrected"]
    flagged_at: datetime
    judgement: dict[str, object]
    billed_energy_wh: int
    billed_total: Money | None  # what the plausible part billed (None: still being billed)
    authorised_max: Money
    approved_total: Money | None = None
    charged: Money | None = None
    refunded: Money | None = None
    note: str | None = None
    reviewed_by: uuid.UUID | None = None
    reviewed_at: datetime | None = None


class CheckoutRequest(_In):
    """A guest's "Pay by card and start": the charger's power and currency as quoted to it."""

    max_power_w: Annotated[StrictInt, Field(gt=0, le=10_000_000)] | None = None
    currency: CurrencyCode


class NextAction(BaseModel):
    """Where the guest's bank asks it to confirm the payment (3-D Secure), as Stripe's
    ``next_action.redirect_to_url``: the page sends the guest there; it comes back to the
    checkout page."""

    type: Literal["redirect_to_url"] = "redirect_to_url"
    url: str


class CheckoutView(BaseModel):
    status: Literal["held", "requires_action"]
    amount: Money
    next_action: NextAction | None = None


class ProcessorView(BaseModel):
    """How a page takes a card: the simulated processor's own form, or Stripe.js with the
    publishable key (public by design; the secret key never leaves billing)."""

    kind: Literal["simulated", "stripe"]
    publishable_key: str | None = None


class CardEntryRequest(_In):
    """A card as typed into the simulated processor's form (Stripe Elements' fields)."""

    number: str = Field(max_length=40, description="the card number; spaces and dashes allowed")
    expiry: str = Field(max_length=10, description="MM/YY")
    cvc: str = Field(max_length=8)


class CardTokenView(BaseModel):
    """A typed card as a token (a PaymentMethod's id), for POST /billing/payment-methods."""

    model_config = ConfigDict(from_attributes=True)

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
