"""A billing session's agreed maximum (its limits' max_cost): a wallet hold plus what the card
on file covers beyond it, the cap at settling and review (a no-op on a fresh database, where
0002 creates every table from the current metadata).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE billing_sessions ADD COLUMN IF NOT EXISTS max_cost BIGINT")


def downgrade() -> None:
    op.execute("ALTER TABLE billing_sessions DROP COLUMN IF EXISTS max_cost")
