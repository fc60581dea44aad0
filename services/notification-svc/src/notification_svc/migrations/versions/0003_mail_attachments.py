"""a mail's attachment (an invoice's or credit note's PDF, from its event)"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("mails", sa.Column("attachment_name", sa.String(length=120)))
    op.add_column("mails", sa.Column("attachment", sa.LargeBinary()))


def downgrade() -> None:
    op.drop_column("mails", "attachment")
    op.drop_column("mails", "attachment_name")
