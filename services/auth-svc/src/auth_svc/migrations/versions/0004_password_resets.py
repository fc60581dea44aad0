"""password reset links: single use, stored hashed"""

from alembic import op
from auth_svc.tables import password_resets

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    password_resets.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    password_resets.drop(op.get_bind(), checkfirst=True)
