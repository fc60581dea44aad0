"""whose a session is (from SessionPriced), for the mails about a held session"""

from alembic import op
from notification_svc.tables import session_drivers

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    session_drivers.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    session_drivers.drop(op.get_bind(), checkfirst=True)
