"""station-gateway's schema: its own tables plus the outbox and inbox."""

from __future__ import annotations

from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.columns import created_at, recorded_at, updated_at
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
outbox_tables = define_outbox_tables(metadata)

# 1.6 transaction ids and 2.0.1 remoteStartIds are integers the gateway hands out.
ocpp_ids = Sequence("ocpp_ids", metadata=metadata, start=1000)


stations = Table(
    "stations",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("organisation_id", Uuid, nullable=True),
    Column("name", Text, nullable=True),
    Column("connectors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("password_hash", Text, nullable=True),
    Column("security_profile", Integer, nullable=True),
    Column("time_zone", String(64), nullable=True),
    Column("tariff_key", String(200), nullable=True),
    Column("connector_tariffs", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("commercial_status", String(16), nullable=True),
    Column("vendor", Text, nullable=True),
    Column("model", Text, nullable=True),
    Column("firmware_version", Text, nullable=True),
    Column("booted_at", DateTime(timezone=True), nullable=True),
    updated_at(),
)

tariffs = Table(
    "tariffs",
    metadata,
    Column("tariff_key", String(200), primary_key=True),
    Column("tariff", JSONB, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
)

station_presence = Table(
    "station_presence",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("instance_id", String(200), nullable=False),
    Column("connection_id", Uuid, nullable=False),
    Column("ocpp_version", String(8), nullable=False),
    Column("connected", Boolean, nullable=False),
    Column("online", Boolean, nullable=False),
    Column("connected_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    # A charging card refused (not a Plugpay session's idTag): the screen points to the app.
    Column("card_refused_at", DateTime(timezone=True), nullable=True),
)

gateway_instances = Table(
    "gateway_instances",
    metadata,
    Column("instance_id", String(200), primary_key=True),
    recorded_at("beat_at"),
)

connector_status = Table(
    "connector_status",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("connector_id", Integer, primary_key=True),
    Column("status", String(32), nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),  # the station's clock
    # Ours: when the status arrived (the lost-transaction grace period counts from it).
    recorded_at("reported_at"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("station_id", String(64), nullable=False),
    Column("connector_id", Integer, nullable=False),
    # code_issued -> authorized -> starting -> charging -> completed
    # (or denied / abandoned / expired)
    Column("state", String(16), nullable=False),
    Column("code", String(16), nullable=True),
    Column("token_id", String(64), nullable=True),
    Column("qr_url", Text, nullable=True),
    Column("session_started_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("user_id", Uuid, nullable=True),
    Column("id_tag", String(20), nullable=True, unique=True),
    Column("remote_start_id", BigInteger, nullable=True, unique=True),
    Column("limits", JSONB, nullable=True),
    # Ours, not the station's: the plausibility judgement's window starts here.
    Column("authorized_at", DateTime(timezone=True), nullable=True),
    # Billing's deadline for the start (SessionAuthorized): the gateway gives up the session
    # after it and answers a later start Invalid, under the connector lock.
    Column("start_deadline", DateTime(timezone=True), nullable=True),
    Column("start_received_at", DateTime(timezone=True), nullable=True),
    Column("tariff", JSONB, nullable=True),
    Column("time_zone", String(64), nullable=True),
    Column("transaction_id", String(64), nullable=True),
    Column("meter_start_wh", BigInteger, nullable=True),
    Column("meter_last_wh", BigInteger, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("cost_so_far_minor", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("stop_requested_by", String(16), nullable=True),
    Column("stop_requested_at", DateTime(timezone=True), nullable=True),
    Column("meter_stop_wh", BigInteger, nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("stop_reason", String(32), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("final_cost_minor", BigInteger, nullable=True),
    # The payer agreed to at most the hold: the cost a station is told never exceeds it.
    Column("hold_amount_minor", BigInteger, nullable=True),
    Column("free_of_charge", Boolean, nullable=False, server_default=text("false")),
    # A guest's session (no account, paid by card): a 2.1 station starts it as DirectPayment.
    Column("guest", Boolean, nullable=False, server_default=text("false")),
    # The plausibility judgement of the meter evidence (MeterJudgement as JSON).
    Column("meter_judgement", JSONB, nullable=True),
    Column("denial_reason", String(32), nullable=True),
    Column("denial_message", Text, nullable=True),
    created_at(),
    updated_at(),
    # Exactly one session per station transaction: the idempotency key of SessionCompleted.
    UniqueConstraint("station_id", "transaction_id", name="uq_sessions_station_transaction"),
    Index("ix_sessions_station_created", "station_id", "created_at"),
)

meter_samples = Table(
    "meter_samples",
    metadata,
    Column("session_id", Uuid, ForeignKey("sessions.session_id"), primary_key=True),
    # A replayed sample has the same timestamp: the primary key drops the duplicate.
    Column("sampled_at", DateTime(timezone=True), primary_key=True),
    Column("energy_wh", BigInteger, nullable=False),
    Column("power_w", BigInteger, nullable=True),
    Column("soc_percent", Integer, nullable=True),
)

station_commands = Table(
    "station_commands",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("station_id", String(64), nullable=False),
    Column("session_id", Uuid, nullable=True),
    Column("kind", String(32), nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_by", String(200), nullable=False),
    created_at(),
    Column("executed_by", String(200), nullable=True),
    Column("done_at", DateTime(timezone=True), nullable=True),
    Column("result", JSONB, nullable=True),
    Index(
        "ix_station_commands_pending", "station_id", "id", postgresql_where=text("done_at IS NULL")
    ),
)

# OCPP 2.1 C25: what a station's WebPaymentsCtrlr was given. The shared secret keys the
# station's TOTP, so it is kept as it is (like the code signing key), never logged or shown.
web_payment_terms = Table(
    "web_payment_terms",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("shared_secret", Text, nullable=False),
    Column("validity_s", Integer, nullable=False),
    Column("code_length", Integer, nullable=False),
    created_at(),
    Column("provisioned_at", DateTime(timezone=True), nullable=True),
)

# A payer reached the landing page from a station's dynamic code: no other code is issued for
# the connector until ``until`` or until the session leaves code_issued (NotifyWebPaymentStarted).
web_payment_locks = Table(
    "web_payment_locks",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("connector_id", Integer, primary_key=True),
    Column("session_id", Uuid, nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("jwk", JSONB, nullable=False),
    created_at(),
)
