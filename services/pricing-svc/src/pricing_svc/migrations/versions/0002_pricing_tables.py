"""Stations' commercials, versioned tariffs, per-session pricing records."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stations",
        sa.Column("station_id", sa.String(64), primary_key=True),
        sa.Column("organisation_id", sa.Uuid, nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("connectors", JSONB, nullable=False),
        sa.Column("registered_at", _TS, nullable=False),
        sa.Column("time_zone", sa.String(64)),
        sa.Column("tariff_key", sa.String(36)),
        sa.Column("connector_tariffs", JSONB),
        sa.Column("connector_max_power_w", JSONB),
        sa.Column("access_policy", JSONB),
        sa.Column("status", sa.String(16)),
        sa.Column("commercials_updated_at", _TS),
    )
    op.create_table(
        "tariffs",
        sa.Column("tariff_key", sa.String(36), primary_key=True),
        sa.Column("organisation_id", sa.Uuid, nullable=False, index=True),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "tariff_versions",
        sa.Column(
            "tariff_key", sa.String(36), sa.ForeignKey("tariffs.tariff_key"), primary_key=True
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("tariff", JSONB, nullable=False),
        sa.Column("published_at", _TS, nullable=False),
    )
    op.create_table(
        "session_pricings",
        sa.Column("session_id", sa.Uuid, primary_key=True),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("denial_reason", sa.String(40)),
        sa.Column("station_organisation_id", sa.Uuid),
        sa.Column("tariff", JSONB),
        sa.Column("time_zone", sa.String(64)),
        sa.Column("max_power_w", sa.Integer),
        sa.Column("free_of_charge", sa.Boolean, nullable=False),
        sa.Column("decided_at", _TS, nullable=False),
        sa.Column("cost_total_minor", sa.BigInteger),
        sa.Column("cost_currency", sa.String(3)),
        sa.Column("cost_breakdown", JSONB),
        sa.Column("costed_at", _TS),
    )


def downgrade() -> None:
    for name in ("session_pricings", "tariff_versions", "tariffs", "stations"):
        op.drop_table(name)
