"""Whether a session is a guest's (paid by card without an account, SessionCodeScanned.guest):
a 2.1 station is started with the idToken type DirectPayment for it."""

from plugpay_platform.migrations import columns_added

revision = "0009"
down_revision = "0008"

# 0002 creates the table from the current definition, which already has the column.
upgrade, downgrade = columns_added({"sessions": {"guest": "boolean NOT NULL DEFAULT false"}})
