"""A receipt's buyer as the payer names it (a guest's address, a business VAT id) and how many
times it was mailed on request (a no-op on a fresh database, where 0002 creates every table from
the current metadata).
"""

from plugpay_platform.migrations import columns_added

revision = "0007"
down_revision = "0006"

upgrade, downgrade = columns_added(
    {"receipts": {"buyer_vat_id": "VARCHAR(20)", "mails_requested": "INTEGER NOT NULL DEFAULT 0"}}
)
