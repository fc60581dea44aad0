"""When a station last refused a charging card we do not know (its screen says: pay by app).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0002 creates the table from the current definition, which already has the column.
    op.execute("ALTER TABLE station_presence ADD COLUMN IF NOT EXISTS card_refused_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE station_presence DROP COLUMN IF EXISTS card_refused_at")
