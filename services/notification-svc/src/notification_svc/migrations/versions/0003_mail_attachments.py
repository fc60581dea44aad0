"""a mail's attachment (an invoice's or credit note's PDF, from its event)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mails", sa.Column("attachment_name", sa.String(length=120)))
    op.add_column("mails", sa.Column("attachment", sa.LargeBinary()))


def downgrade() -> None:
    op.drop_column("mails", "attachment")
    op.drop_column("mails", "attachment_name")
