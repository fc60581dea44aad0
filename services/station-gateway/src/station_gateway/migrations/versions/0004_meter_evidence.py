"""What the plausibility judgement needs and decides: when we authorised the session and
received its start (our clock), and the judgement itself.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0002 creates the table from the current definition, which already has the columns.
    op.execute(
        "ALTER TABLE sessions"
        " ADD COLUMN IF NOT EXISTS authorized_at timestamptz,"
        " ADD COLUMN IF NOT EXISTS start_received_at timestamptz,"
        " ADD COLUMN IF NOT EXISTS meter_judgement jsonb"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE sessions DROP COLUMN IF EXISTS authorized_at,"
        " DROP COLUMN IF EXISTS start_received_at, DROP COLUMN IF EXISTS meter_judgement"
    )
