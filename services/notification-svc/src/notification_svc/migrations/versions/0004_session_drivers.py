"""whose a session is (from SessionPriced), for the mails about a held session"""

from notification_svc.tables import session_drivers
from plugpay_platform.table_migrations import tables_created

revision = "0004"
down_revision = "0003"

upgrade, downgrade = tables_created(session_drivers)
