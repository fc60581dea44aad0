"""What the gateway needs to tell a station the final cost at the end of its transaction: the
hold the payer agreed to (the cap) and whether the session is free of charge.
"""

from plugpay_platform.migrations import columns_added

revision = "0007"
down_revision = "0006"

# 0002 creates the table from the current definition, which already has the columns.
upgrade, downgrade = columns_added(
    {
        "sessions": {
            "hold_amount_minor": "bigint",
            "free_of_charge": "boolean NOT NULL DEFAULT false",
        }
    }
)
