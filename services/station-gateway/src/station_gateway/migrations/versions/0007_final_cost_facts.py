"""What the gateway needs to tell a station the final cost at the end of its transaction: the
hold the payer agreed to (the cap) and whether the session is free of charge.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0002 creates the table from the current definition, which already has the columns.
    op.execute("ALTER TABLE sessions ADD COLUMN IF NOT EXISTS hold_amount_minor bigint")
    op.execute(
        "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS free_of_charge boolean"
        " NOT NULL DEFAULT false"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE sessions DROP COLUMN IF EXISTS free_of_charge")
    op.execute("ALTER TABLE sessions DROP COLUMN IF EXISTS hold_amount_minor")
