"""When a connector status arrived, by our clock (the lost-transaction grace counts from it)."""

from plugpay_platform.migrations import columns_added

revision = "0003"
down_revision = "0002"

# 0002 creates the table from the current definition, which already has the column.
upgrade, downgrade = columns_added(
    {"connector_status": {"reported_at": "timestamptz NOT NULL DEFAULT now()"}}
)
