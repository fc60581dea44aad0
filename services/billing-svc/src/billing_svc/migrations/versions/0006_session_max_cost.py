"""A billing session's agreed maximum (its limits' max_cost): a wallet hold plus what the card
on file covers beyond it, the cap at settling and review (a no-op on a fresh database, where
0002 creates every table from the current metadata).
"""

from plugpay_platform.migrations import columns_added

revision = "0006"
down_revision = "0005"

upgrade, downgrade = columns_added({"billing_sessions": {"max_cost": "BIGINT"}})
