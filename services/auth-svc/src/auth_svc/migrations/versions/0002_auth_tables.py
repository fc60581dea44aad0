"""auth tables"""

from alembic import op
from auth_svc.tables import (
    email_verifications,
    group_members,
    login_throttle,
    organisations,
    refresh_tokens,
    signing_keys,
    station_credentials,
    stations,
    user_groups,
    users,
)

revision = "0002"
down_revision = "0001"

# Later changes to these tables get explicit op.* migrations; this first one creates them as
# tables.py defines them today.
TABLES = (
    login_throttle,
    organisations,
    signing_keys,
    stations,
    user_groups,
    users,
    email_verifications,
    group_members,
    refresh_tokens,
    station_credentials,
)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind, checkfirst=True)
