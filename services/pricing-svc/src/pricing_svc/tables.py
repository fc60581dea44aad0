"""pricing-svc's schema: its own tables plus the outbox and inbox."""

from __future__ import annotations

from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.columns import created_at
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
outbox_tables = define_outbox_tables(metadata)

# Registration comes from auth-svc's StationRegistered; commercials from the operator API.
stations = Table(
    "stations",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("organisation_id", Uuid, nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("connectors", JSONB, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("time_zone", String(64)),
    Column("tariff_key", String(36)),
    Column("connector_tariffs", JSONB),
    Column("connector_max_power_w", JSONB),
    Column("access_policy", JSONB),
    Column("status", String(16)),
    Column("commercials_updated_at", DateTime(timezone=True)),
)

tariffs = Table(
    "tariffs",
    metadata,
    Column("tariff_key", String(36), primary_key=True),
    Column("organisation_id", Uuid, nullable=False, index=True),
    Column("latest_version", Integer, nullable=False),
    created_at(),
)

tariff_versions = Table(
    "tariff_versions",
    metadata,
    Column("tariff_key", String(36), ForeignKey("tariffs.tariff_key"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("tariff", JSONB, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
)

# One row per session pricing decided: the snapshot the final cost is computed from.
session_pricings = Table(
    "session_pricings",
    metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("station_id", String(64), nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("outcome", String(16), nullable=False),  # priced | denied
    Column("denial_reason", String(40)),
    Column("station_organisation_id", Uuid),
    Column("tariff", JSONB),
    Column("time_zone", String(64)),
    Column("max_power_w", Integer),
    Column("free_of_charge", Boolean, nullable=False, default=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("cost_total_minor", BigInteger),
    Column("cost_currency", String(3)),
    Column("cost_breakdown", JSONB),
    Column("costed_at", DateTime(timezone=True)),
)

# The station directory drivers search ("find a charger"): where each station is (auth-svc's
# StationRegistered) and whether it is reachable (station-gateway's presence events). Its own
# consumer group reads plugpay.identity and plugpay.stations from the start, so it is rebuilt
# from the log and needs no backfill.
station_directory = Table(
    "station_directory",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("address", String(500)),
    Column("located_at", DateTime(timezone=True)),
    Column("connected", Boolean, nullable=False, default=False),
    Column("online", Boolean, nullable=False, default=False),
    Column("ocpp_version", String(8)),
    # The instant of the presence event applied last (stale ones are ignored).
    Column("presence_at", DateTime(timezone=True)),
)

# Each connector's last status as the station reported it (connector 0 = the whole station).
connector_status = Table(
    "connector_status",
    metadata,
    Column("station_id", String(64), primary_key=True),
    Column("connector_id", Integer, primary_key=True),
    Column("status", String(32), nullable=False),
    Column("error_code", String(64)),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)
