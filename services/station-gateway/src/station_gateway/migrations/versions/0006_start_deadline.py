"""The start deadline the gateway owns (billing's, from SessionAuthorized)."""

from plugpay_platform.migrations import columns_added

revision = "0006"
down_revision = "0005"

# 0002 creates the table from the current definition, which already has the column.
upgrade, downgrade = columns_added({"sessions": {"start_deadline": "timestamptz"}})
