"""The gateway's own tables: stations, presence, sessions, meter samples, commands, keys."""

from alembic import op
from plugpay_platform.migrations import create_platform_tables
from sqlalchemy.schema import CreateSequence, DropSequence
from station_gateway import tables

revision = "0002"
down_revision = "0001"

_TABLES = (
    tables.stations,
    tables.tariffs,
    tables.station_presence,
    tables.gateway_instances,
    tables.connector_status,
    tables.sessions,
    tables.meter_samples,
    tables.station_commands,
    tables.signing_keys,
)


def upgrade() -> None:
    op.execute(CreateSequence(tables.ocpp_ids, if_not_exists=True))
    create_platform_tables(op, *_TABLES)


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table.name)
    op.execute(DropSequence(tables.ocpp_ids))
