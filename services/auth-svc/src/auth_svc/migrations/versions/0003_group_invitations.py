"""group invitations: a driver joins an organisation's group only by accepting one"""

from auth_svc.tables import group_invitations
from plugpay_platform.table_migrations import tables_created

revision = "0003"
down_revision = "0002"

upgrade, downgrade = tables_created(group_invitations)
