"""Sessions held for an operator's review and the decisions (a no-op on a fresh database,
where 0002 creates every table from the current metadata).
"""

from billing_svc.tables import session_reviews
from plugpay_platform.table_migrations import tables_created

revision = "0004"
down_revision = "0003"

upgrade, downgrade = tables_created(session_reviews)
