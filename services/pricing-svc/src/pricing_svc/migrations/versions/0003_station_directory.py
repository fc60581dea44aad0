"""The station directory for drivers: location and live connector availability."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "station_directory",
        sa.Column("station_id", sa.String(64), primary_key=True),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
        sa.Column("address", sa.String(500)),
        sa.Column("located_at", _TS),
        sa.Column("connected", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("online", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("ocpp_version", sa.String(8)),
        sa.Column("presence_at", _TS),
    )
    op.create_index("ix_station_directory_location", "station_directory", ["latitude", "longitude"])
    op.create_table(
        "connector_status",
        sa.Column("station_id", sa.String(64), primary_key=True),
        sa.Column("connector_id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error_code", sa.String(64)),
        sa.Column("changed_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("connector_status")
    op.drop_index("ix_station_directory_location", table_name="station_directory")
    op.drop_table("station_directory")
