"""The scan's event on its claim, so the winner reads the session before the store has it.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0002 creates tables as tables.py defines them today, so a new database has it already.
    op.execute("ALTER TABLE scan_claims ADD COLUMN IF NOT EXISTS scanned jsonb")


def downgrade() -> None:
    op.drop_column("scan_claims", "scanned")
