"""Sessions held for an operator's review and the decisions (a no-op on a fresh database,
where 0002 creates every table from the current metadata).
"""

from alembic import op
from billing_svc.tables import session_reviews

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    session_reviews.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    session_reviews.drop(op.get_bind(), checkfirst=True)
