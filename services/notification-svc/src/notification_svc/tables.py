"""notification-svc's schema: contacts, the mail queue (also the delivery log), outbox, inbox."""

from __future__ import annotations

from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.columns import created_at, recorded_at, updated_at
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

metadata = MetaData()
outbox_tables = define_outbox_tables(metadata)

# Learned from auth-svc's events; the preference from the driver's own API call.
contacts = Table(
    "contacts",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("email", String(254)),
    Column("verified", Boolean, nullable=False, server_default=text("false")),
    Column("receipts", Boolean, nullable=False, server_default=text("true")),
    updated_at(),
)

# One row per mail, written in the transaction that claims its event in the inbox (so one
# event gives one mail, whatever the redeliveries); the sender loop delivers it afterwards.
# Bodies are dropped once sent (a link's code must not outlive its delivery): the row stays
# as the delivery log.
mails = Table(
    "mails",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Uuid, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("to_address", String(254)),
    Column("subject", String(300), nullable=False),
    Column("text_body", Text),
    Column("html_body", Text),
    # A PDF the mail carries (dropped with the bodies once sent or given up).
    Column("attachment_name", String(120)),
    Column("attachment", LargeBinary),
    Column("state", String(16), nullable=False, server_default="queued"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    recorded_at("next_attempt_at"),
    Column("last_error", String(500)),
    created_at(),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("event_id", "kind", name="uq_mails_event_kind"),
    Index(
        "ix_mails_due",
        "next_attempt_at",
        postgresql_where=text("state IN ('queued', 'sending')"),
    ),
    Index("ix_mails_user", "user_id"),
)

# Which driver a session is (learned from SessionPriced, on the same partition as the session's
# later events): SessionFlagged names only the session, and its mail goes to the driver.
session_drivers = Table(
    "session_drivers",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("station_id", String(100), nullable=False),
    created_at(),
)
