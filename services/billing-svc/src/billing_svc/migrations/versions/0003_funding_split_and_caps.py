"""Receipts keep their funding split and cap; cost overruns and payment declines.

0002 creates tables from the current metadata, so on a fresh database everything below exists
already: each step is written to be a no-op then.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from billing_svc.tables import cost_overruns, payment_declines

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


def upgrade() -> None:
    for name, kind in RECEIPT_COLUMNS.items():
        op.execute(f"ALTER TABLE receipts ADD COLUMN IF NOT EXISTS {name} {kind}")
    bind = op.get_bind()
    for table in (cost_overruns, payment_declines):
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    for table in (payment_declines, cost_overruns):
        table.drop(op.get_bind(), checkfirst=True)
    for name in RECEIPT_COLUMNS:
        op.execute(f"ALTER TABLE receipts DROP COLUMN IF EXISTS {name}")
