"""group invitations: a driver joins an organisation's group only by accepting one"""

from alembic import op
from auth_svc.tables import group_invitations

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    group_invitations.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    group_invitations.drop(op.get_bind(), checkfirst=True)
