"""Receipts keep their funding split and cap; cost overruns, payment declines; the journal of
processor calls made outside transactions (settling sessions, pending top-ups and refunds).

0002 creates tables from the current metadata, so on a fresh database everything below exists
already: each step is written to be a no-op then.
"""

from alembic import op
from billing_svc.tables import cost_overruns, payment_declines, processor_operations
from plugpay_platform.migrations import add_columns, create_platform_tables, drop_columns

revision = "0003"
down_revision = "0002"

RECEIPT_COLUMNS = {
    "wallet_part": "BIGINT",
    "card_part": "BIGINT",
    "authorised_max": "BIGINT",
    "claimed_total": "BIGINT",
    "capped": "BIGINT NOT NULL DEFAULT 0",
}
COLUMNS = {
    "receipts": RECEIPT_COLUMNS,
    "billing_sessions": {
        "cost": "JSONB",
        "correlation_id": "UUID",
        "causation_id": "UUID",
    },
    "refunds": {"status": "VARCHAR(10) NOT NULL DEFAULT 'done'"},
}
NEW_TABLES = (cost_overruns, payment_declines, processor_operations)


def upgrade() -> None:
    add_columns(COLUMNS)
    create_platform_tables(op, *NEW_TABLES)


def downgrade() -> None:
    for table in reversed(NEW_TABLES):
        table.drop(op.get_bind(), checkfirst=True)
    drop_columns(COLUMNS)
