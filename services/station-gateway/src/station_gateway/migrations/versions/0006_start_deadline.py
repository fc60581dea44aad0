"""The start deadline the gateway owns (billing's, from SessionAuthorized).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0002 creates the table from the current definition, which already has the column.
    op.execute("ALTER TABLE sessions ADD COLUMN IF NOT EXISTS start_deadline timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE sessions DROP COLUMN IF EXISTS start_deadline")
