"""Whether a session is a guest's (paid by card without an account, SessionCodeScanned.guest):
a 2.1 station is started with the idToken type DirectPayment for it.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: 0002 creates the table from the current definition, which may have it.
    op.execute("ALTER TABLE sessions ADD COLUMN IF NOT EXISTS guest boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE sessions DROP COLUMN IF EXISTS guest")
