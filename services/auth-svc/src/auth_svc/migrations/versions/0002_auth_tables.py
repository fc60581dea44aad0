"""auth tables"""

from auth_svc import tables
from plugpay_platform.table_migrations import tables_created

revision = "0002"
down_revision = "0001"

# Later changes to these tables get explicit op.* migrations; this first one creates them as
# tables.py defines them today.
upgrade, downgrade = tables_created(
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
