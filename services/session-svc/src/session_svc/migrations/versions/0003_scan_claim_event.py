"""The scan's event on its claim, so the winner reads the session before the store has it."""

from plugpay_platform.migrations import columns_added

revision = "0003"
down_revision = "0002"

# 0002 creates tables as tables.py defines them today, so a new database has it already.
upgrade, downgrade = columns_added({"scan_claims": {"scanned": "jsonb"}})
