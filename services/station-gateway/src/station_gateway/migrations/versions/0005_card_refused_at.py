"""When a station last refused a charging card we do not know (its screen says: pay by app)."""

from plugpay_platform.migrations import columns_added

revision = "0005"
down_revision = "0004"

# 0002 creates the table from the current definition, which already has the column.
upgrade, downgrade = columns_added({"station_presence": {"card_refused_at": "timestamptz"}})
