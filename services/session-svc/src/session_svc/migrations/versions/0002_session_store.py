"""The session store, timers, scan claims and rate-limit counters."""

from alembic import op
from plugpay_platform.migrations import create_platform_tables
from session_svc.tables import (
    meter_summaries,
    rate_limit_hits,
    scan_claims,
    sessions,
    stations,
    timers,
)

revision = "0002"
down_revision = "0001"

# Later changes to these tables get explicit op.* migrations; this first one creates them as
# tables.py defines them today.


def upgrade() -> None:
    create_platform_tables(
        op, sessions, meter_summaries, stations, timers, scan_claims, rate_limit_hits
    )


def downgrade() -> None:
    for name in (
        "rate_limit_hits",
        "scan_claims",
        "timers",
        "stations",
        "meter_summaries",
        "sessions",
    ):
        op.drop_table(name)
