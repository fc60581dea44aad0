"""A receipt's buyer as the payer names it (a guest's address, a business VAT id) and how many
times it was mailed on request (a no-op on a fresh database, where 0002 creates every table from
the current metadata).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = {
    "receipts": {
        "buyer_vat_id": "VARCHAR(20)",
        "mails_requested": "INTEGER NOT NULL DEFAULT 0",
    },
}


def upgrade() -> None:
    for table_name, columns in COLUMNS.items():
        for name, kind in columns.items():
            op.execute(f"ALTER TABLE {table_name} ADD COLUMN IF NOT EXISTS {name} {kind}")


def downgrade() -> None:
    for table_name, columns in COLUMNS.items():
        for name in columns:
            op.execute(f"ALTER TABLE {table_name} DROP COLUMN IF EXISTS {name}")
