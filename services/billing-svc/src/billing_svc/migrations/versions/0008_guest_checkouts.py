"""Guest checkouts: a card hold placed on-session (3-D Secure in the guest's browser) before
the charger is started."""

from alembic import op
from billing_svc.checkout_tables import guest_checkouts

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    guest_checkouts.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    guest_checkouts.drop(op.get_bind(), checkfirst=True)
