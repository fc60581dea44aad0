"""billing-svc's schema: the ledger, drivers' billing profiles, sessions, receipts, outbox/inbox.

Ledger rows are append-only (``transfers``, ``ledger_entries``: a trigger refuses UPDATE and
DELETE); balances live on ``accounts`` and are only changed together with a transfer, under the
account's row lock. CHECK constraints repeat the balance rules as a last line of defence.
"""

from __future__ import annotations

from typing import Any

from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.columns import created_at, recorded_at, updated_at
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
outbox_tables = define_outbox_tables(metadata)


def money(name: str, *, nullable: bool = False, server_default: str | None = None) -> Column[int]:
    """An amount of money in integer minor units of its row's currency."""
    return Column(name, BigInteger, nullable=nullable, server_default=server_default)


def currency() -> Column[str]:
    """The ISO 4217 code of its row's amounts."""
    return Column("currency", String(3), nullable=False)


def station_id() -> Column[str]:
    """The station a row is about, as station-gateway names it."""
    return Column("station_id", String(100), nullable=False)


def one_per_session() -> tuple[Column[Any], ...]:
    """The head of a table with a row per billing session that operators list per
    organisation: the session, the organisation and its station, the driver, the currency."""
    return (
        Column("session_id", Uuid, primary_key=True),
        Column("organisation_id", Uuid, nullable=False, index=True),
        station_id(),
        Column("user_id", Uuid, nullable=False),
        currency(),
    )


accounts = Table(
    "accounts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("code", String(120), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    currency(),
    Column("rule", String(40), nullable=False),
    Column("owner_id", Uuid, nullable=True),
    money("debits_pending", server_default="0"),
    money("debits_posted", server_default="0"),
    money("credits_pending", server_default="0"),
    money("credits_posted", server_default="0"),
    Column("entries", BigInteger, nullable=False, server_default="0"),
    created_at(),
    CheckConstraint(
        "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0"
        " AND credits_posted >= 0",
        name="ck_accounts_sums_not_negative",
    ),
    CheckConstraint(
        "rule <> 'debits_must_not_exceed_credits'"
        " OR debits_pending + debits_posted <= credits_posted",
        name="ck_accounts_debits_within_credits",
    ),
    CheckConstraint(
        "rule <> 'credits_must_not_exceed_debits'"
        " OR credits_pending + credits_posted <= debits_posted",
        name="ck_accounts_credits_within_debits",
    ),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", Uuid, primary_key=True),  # chosen by the client: the idempotency key
    Column("kind", String(20), nullable=False),
    Column("debit_account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    Column("credit_account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    money("amount"),
    currency(),
    Column("code", String(40), nullable=False),
    Column("pending_id", Uuid, ForeignKey("transfers.id"), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("reference", String(200), nullable=True),
    created_at(),
    CheckConstraint("amount >= 0", name="ck_transfers_amount"),
    CheckConstraint("debit_account_id <> credit_account_id", name="ck_transfers_two_accounts"),
    # A pending transfer is posted, voided or expired exactly once.
    Index("ux_transfers_pending_once", "pending_id", unique=True),
    Index("ix_transfers_reference", "reference"),
    Index(
        "ix_transfers_pending_expiry",
        "expires_at",
        postgresql_where=text("kind = 'pending' AND expires_at IS NOT NULL"),
    ),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("account_id", Uuid, ForeignKey("accounts.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("transfer_id", Uuid, ForeignKey("transfers.id"), nullable=False),
    Column("code", String(40), nullable=False),
    money("posted_delta"),
    money("held_delta"),
    money("balance_after"),
    money("held_after"),
    Column("reference", String(200), nullable=True),
    created_at(),
    PrimaryKeyConstraint("account_id", "seq"),
)

billing_accounts = Table(
    "billing_accounts",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("verified", Boolean, nullable=False, server_default="false"),
    Column("prefers_card", Boolean, nullable=False, server_default="false"),
    Column("processor_customer_id", String(100), nullable=True),
    Column("auto_topup_enabled", Boolean, nullable=False, server_default="false"),
    money("auto_topup_threshold", server_default="0"),
    money("auto_topup_amount", server_default="0"),
    Column("auto_topup_currency", String(3), nullable=False, server_default="EUR"),
    Column("auto_topup_payment_method_id", Uuid, nullable=True),
    # The address invoices name as the buyer's (learned from UserRegistered).
    Column("email", String(254), nullable=True),
    created_at(),
    updated_at(),
)

payment_methods = Table(
    "payment_methods",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    # Only the processor's token and display facts: never a card number.
    Column("processor_token", String(200), nullable=False),
    Column("brand", String(30), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("exp_month", Integer, nullable=True),
    Column("exp_year", Integer, nullable=True),
    Column("is_default", Boolean, nullable=False, server_default="false"),
    created_at(),
    Column("removed_at", DateTime(timezone=True), nullable=True),
    # When the driver was told the card expires (PaymentMethodExpiring, once per card).
    Column("expiry_noticed_at", DateTime(timezone=True), nullable=True),
    Index(
        "ux_payment_methods_one_default",
        "user_id",
        unique=True,
        postgresql_where=text("is_default AND removed_at IS NULL"),
    ),
)

billing_sessions = Table(
    "billing_sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False, index=True),
    station_id(),
    Column("connector_id", Integer, nullable=False),
    Column("organisation_id", Uuid, nullable=False),
    currency(),
    # authorized, denied, settling (cost recorded, being collected), billed, released
    Column("status", String(20), nullable=False),
    Column("funding", String(10), nullable=True),
    Column("hold_transfer_id", Uuid, nullable=True),
    money("hold_amount", server_default="0"),
    # The most the driver agreed to (the limits' max_cost): a wallet hold plus what the card
    # on file covers beyond it; None: the hold (sessions before 0006, card holds).
    money("max_cost", nullable=True),
    Column("payment_method_id", Uuid, nullable=True),
    Column("payment_intent_id", String(100), nullable=True),
    Column("denial_reason", String(40), nullable=True),
    Column("time_zone", String(64), nullable=False),
    Column("authorized_at", DateTime(timezone=True), nullable=True),
    Column("cost", JSONB, nullable=True),  # the SessionCostCalculated being collected
    Column("correlation_id", Uuid, nullable=True),  # of that event, for what settling emits
    Column("causation_id", Uuid, nullable=True),
    created_at(),
    updated_at(),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, nullable=False, unique=True),
    Column("user_id", Uuid, nullable=False, index=True),
    Column("organisation_id", Uuid, nullable=False),
    station_id(),
    currency(),
    money("total_excl_vat"),
    money("total_vat"),
    money("total_incl_vat"),
    money("charged"),  # collected now (hold, wallet, card)
    money("debt", server_default="0"),  # recorded as owed
    Column("funding", String(10), nullable=False),
    Column("payment_method_label", String(60), nullable=False),
    Column("energy_wh", BigInteger, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("breakdown", JSONB, nullable=False),
    money("balance_after", nullable=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    # The funding split and the cap, so the receipt says where the money came from.
    money("wallet_part", nullable=True),
    money("card_part", nullable=True),
    money("authorised_max", nullable=True),
    money("claimed_total", nullable=True),  # incl. VAT, before the cap
    money("capped", server_default="0"),
    # The invoice: its number from the organisation's gapless yearly sequence, and the seller,
    # station and buyer as they were when it was issued (an issued invoice never changes).
    Column("invoice_number", String(40), nullable=True),
    Column("seller", JSONB, nullable=True),
    Column("station", JSONB, nullable=True),
    Column("time_zone", String(64), nullable=True),
    Column("buyer_email", String(254), nullable=True),
    # A business buyer's VAT id, named by the payer once (a guest's invoice has no buyer until
    # the payer types an address), and how many times the invoice was mailed on request.
    Column("buyer_vat_id", String(20), nullable=True),
    Column("mails_requested", Integer, nullable=False, server_default="0"),
    Index("ix_receipts_org_issued", "organisation_id", "issued_at"),
    Index("ux_receipts_invoice_number", "organisation_id", "invoice_number", unique=True),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, nullable=False, index=True),
    Column("user_id", Uuid, nullable=False),
    Column("organisation_id", Uuid, nullable=False),
    station_id(),
    currency(),
    money("amount"),
    Column("reason", Text, nullable=False),
    Column("issued_by", Uuid, nullable=False),
    Column("destination", String(10), nullable=False),  # wallet or card
    # pending: the card refund is at the processor (the amount is reserved); done; failed
    Column("status", String(10), nullable=False, server_default="done"),
    # Given when the refund is posted (a failed one never takes a number).
    Column("credit_note_number", String(40), nullable=True),
    created_at(),
    CheckConstraint("amount > 0", name="ck_refunds_amount"),
    Index("ux_refunds_credit_note_number", "organisation_id", "credit_note_number", unique=True),
)

topups = Table(
    "topups",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False, index=True),
    money("amount"),
    currency(),
    Column("trigger", String(10), nullable=False),
    Column("status", String(10), nullable=False),  # pending (at the processor), succeeded, failed
    Column("payment_method_id", Uuid, nullable=True),
    Column("payment_intent_id", String(100), nullable=True),
    Column("failure_reason", String(60), nullable=True),
    created_at(),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal_id", Uuid, nullable=False),
    Column("key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response", JSONB, nullable=True),
    created_at(),
    PrimaryKeyConstraint("principal_id", "key"),
)

processor_events = Table(
    "processor_events",
    metadata,
    Column("event_id", String(100), primary_key=True),  # de-duplicates webhook deliveries
    Column("type", String(100), nullable=False),
    Column("payload", JSONB, nullable=False),
    recorded_at("received_at"),
)

processor_operations = Table(
    # The journal of processor calls made outside any transaction: recorded (pending) in the
    # transaction that decides them, called after its commit with ``key`` as the processor's
    # idempotency key, their outcome recorded in a short transaction. A crash in between leaves
    # it pending; it is called again with the same key, which cannot charge twice.
    "processor_operations",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("kind", String(20), nullable=False),  # capture, cancel, charge, refund
    Column("reference", String(100), nullable=False, index=True),  # session, top-up, refund
    Column("params", JSONB, nullable=False),
    Column("status", String(10), nullable=False, server_default="pending"),
    Column("outcome", JSONB, nullable=True),
    created_at(),
    updated_at(),
)

cost_overruns = Table(
    # A final cost above what the driver authorised: the difference is the operator's. The
    # evidence an operator or auditor needs to answer for it, one row per session.
    "cost_overruns",
    metadata,
    *one_per_session(),
    money("claimed_total"),
    money("claimed_excl_vat"),
    money("claimed_vat"),
    Column("energy_wh", BigInteger, nullable=False),
    money("authorised_max"),
    money("written_off"),
    created_at(),
)

payment_declines = Table(
    # Declined card payments, counted per account and per client address (card testing).
    "payment_declines",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("client_address", String(64), nullable=True),
    Column("reason", String(60), nullable=False),
    created_at(),
    Index("payment_declines_user", "user_id", "created_at"),
    Index("payment_declines_address", "client_address", "created_at"),
)

LEDGER_TABLES = (accounts, transfers, ledger_entries)
session_reviews = Table(
    # A session the gateway held for review (SessionFlagged): only its plausible part was
    # billed until an operator of the station's organisation decides (SessionReviewed).
    "session_reviews",
    metadata,
    *one_per_session(),
    Column("status", String(10), nullable=False),  # pending, approved, voided, corrected
    Column("judgement", JSONB, nullable=False),  # the gateway's MeterJudgement: the evidence
    Column("billed_energy_wh", BigInteger, nullable=False),
    Column("flagged_at", DateTime(timezone=True), nullable=False),
    # Of the SessionFlagged envelope: SessionReviewed follows from it.
    Column("correlation_id", Uuid, nullable=False),
    Column("flag_event_id", Uuid, nullable=False),
    money("approved_total", nullable=True),
    money("billed_before", nullable=True),
    money("charged", nullable=True),
    money("refunded", nullable=True),
    Column("note", Text, nullable=True),
    Column("reviewed_by", Uuid, nullable=True),
    Column("reviewed_at", DateTime(timezone=True), nullable=True),
    created_at(),
)

legal_profiles = Table(
    # What an organisation's invoices name as the seller; its operators keep it.
    "legal_profiles",
    metadata,
    Column("organisation_id", Uuid, primary_key=True),
    Column("legal_name", String(200), nullable=False),
    Column("address", Text, nullable=False, server_default=""),
    Column("vat_id", String(30), nullable=False, server_default=""),
    Column("invoice_prefix", String(10), nullable=False, server_default="INV"),
    Column("updated_by", Uuid, nullable=True),
    created_at(),
    updated_at(),
)

document_counters = Table(
    # The last number given per organisation, series (invoice, credit_note) and year. Taken
    # with the row locked in the transaction that books the document, so a rollback returns
    # the number: the sequence has no gaps and no duplicates.
    "document_counters",
    metadata,
    Column("organisation_id", Uuid, nullable=False),
    Column("series", String(20), nullable=False),
    Column("year", Integer, nullable=False),
    Column("last_number", BigInteger, nullable=False),
    PrimaryKeyConstraint("organisation_id", "series", "year"),
    CheckConstraint("last_number > 0", name="ck_document_counters_positive"),
)

stations = Table(
    # Name and address of the stations invoices name (learned from StationRegistered).
    "stations",
    metadata,
    Column("station_id", String(100), primary_key=True),
    Column("organisation_id", Uuid, nullable=False),
    Column("name", String(200), nullable=False),
    Column("address", Text, nullable=True),
    created_at(),
)

BILLING_TABLES = (
    billing_accounts,
    payment_methods,
    billing_sessions,
    receipts,
    refunds,
    topups,
    idempotency_keys,
    processor_events,
    cost_overruns,
    payment_declines,
    processor_operations,
    session_reviews,
    legal_profiles,
    document_counters,
    stations,
)
