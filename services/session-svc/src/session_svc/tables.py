"""session-svc's schema: the session store (a projection of the log), the command-side tables
(scan claims, rate limits) and the outbox and inbox.

The store tables can be dropped and rebuilt from the topics at any time (``session-svc rebuild``);
every column in them is derived from events, never from the clock, so a rebuilt store equals
the live one row for row.
"""

from __future__ import annotations

from plugpay_events.outbox import define_outbox_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
outbox_tables = define_outbox_tables(metadata)

# One row per charging session: the aggregate's state, with the columns queries filter on.
sessions = Table(
    "sessions",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("status", String(20), nullable=False),
    Column("station_id", String(64)),
    Column("connector_id", Integer),
    Column("user_id", Uuid),
    Column("station_organisation_id", Uuid),
    Column("code", String(16)),
    Column("token_id", String(100)),
    Column("session_started_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("state", JSONB, nullable=False),
    Index("ix_sessions_user_started", "user_id", "session_started_at"),
    Index("ix_sessions_org_started", "station_organisation_id", "session_started_at"),
    Index("ix_sessions_station_started", "station_id", "session_started_at"),
    Index("ix_sessions_code", "code", "session_started_at"),
)

# The latest meter reading per session (the meter topic is high volume; the app needs only now).
meter_summaries = Table(
    "meter_summaries",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("transaction_id", String(100), nullable=False),
    Column("sampled_at", DateTime(timezone=True), nullable=False),
    Column("energy_register_wh", BigInteger, nullable=False),
    Column("power_w", Integer),
    Column("soc_percent", Integer),
)

# What session-svc knows of stations: presence (online check at scan) and owner.
stations = Table(
    "stations",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("organisation_id", Uuid),
    Column("name", String(200)),
    Column("online", Boolean),
    Column("presence_changed_at", DateTime(timezone=True)),
)

# Timers derived from the sessions (code expiry, start timeout), fired by a background task
# with SELECT ... FOR UPDATE SKIP LOCKED: they survive restarts and run once across replicas.
timers = Table(
    "timers",
    metadata,
    Column("kind", String(20), primary_key=True),
    Column("session_id", Uuid, primary_key=True),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Index("ix_timers_due", "due_at"),
)

STORE_TABLES = (sessions, meter_summaries, stations, timers)

# Command side (not rebuilt from scratch): the first scan of a code wins on this primary key,
# before its event has gone round the log.
scan_claims = Table(
    "scan_claims",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    # The SessionCodeScanned the scan emitted: read-your-writes until the store has applied it.
    Column("scanned", JSONB, nullable=True),
    # Admission control counts the recent claims still waiting for their authorisation.
    Index("ix_scan_claims_claimed_at", "claimed_at"),
)

# Fixed-window counters for typed-code lookups, shared by every replica.
rate_limit_hits = Table(
    "rate_limit_hits",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("hits", Integer, nullable=False),
)
