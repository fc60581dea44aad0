"""Receipts keep their funding split and cap; cost overruns, payment declines; the journal of
processor calls made outside transactions (settling sessions, pending top-ups and refunds).

0002 creates tables from the current metadata, so on a fresh database everything below exists
already: each step is written to be a no-op then.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from billing_svc.tables import cost_overruns, payment_declines, processor_operations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

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
    for table_name, columns in COLUMNS.items():
        for name, kind in columns.items():
            op.execute(f"ALTER TABLE {table_name} ADD COLUMN IF NOT EXISTS {name} {kind}")
    bind = op.get_bind()
    for table in NEW_TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    for table in reversed(NEW_TABLES):
        table.drop(op.get_bind(), checkfirst=True)
    for table_name, columns in COLUMNS.items():
        for name in columns:
            op.execute(f"ALTER TABLE {table_name} DROP COLUMN IF EXISTS {name}")
