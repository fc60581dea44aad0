"""auth tables"""

from alembic import op
from auth_svc import tables

revision = "0002"
down_revision = "0001"

# Later changes to these tables get explicit op.* migrations; this first one creates them as
# tables.py defines them today.
TABLES = (
    tables.login_throttle,
    tables.organisations,
    tables.signing_keys,
    tables.stations,
    tables.user_groups,
    tables.users,
    tables.email_verifications,
    tables.group_members,
    tables.refresh_tokens,
    tables.station_credentials,
)


def upgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(TABLES):
        table.drop(bind, checkfirst=True)
