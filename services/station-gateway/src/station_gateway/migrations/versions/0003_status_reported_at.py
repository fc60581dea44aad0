"""When a connector status arrived, by our clock (the lost-transaction grace counts from it).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0002 creates the table from the current definition, which already has the column.
    op.execute(
        "ALTER TABLE connector_status"
        " ADD COLUMN IF NOT EXISTS reported_at timestamptz NOT NULL DEFAULT now()"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE connector_status DROP COLUMN IF EXISTS reported_at")
