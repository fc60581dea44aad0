"""The outbox and inbox every service has.

Revision ID: 0001
Revises:
"""

from alembic import op
from notification_svc.tables import outbox_tables
from plugpay_platform.migrations import create_platform_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables(op, outbox_tables.outbox, outbox_tables.inbox)


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("outbox")
