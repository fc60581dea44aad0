"""What the plausibility judgement needs and decides: when we authorised the session and
received its start (our clock), and the judgement itself.
"""

from plugpay_platform.migrations import columns_added

revision = "0004"
down_revision = "0003"

# 0002 creates the table from the current definition, which already has the columns.
upgrade, downgrade = columns_added(
    {
        "sessions": {
            "authorized_at": "timestamptz",
            "start_received_at": "timestamptz",
            "meter_judgement": "jsonb",
        }
    }
)
