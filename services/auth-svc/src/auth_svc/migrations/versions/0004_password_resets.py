"""password reset links: single use, stored hashed"""

from auth_svc.tables import password_resets
from plugpay_platform.table_migrations import tables_created

revision = "0004"
down_revision = "0003"

upgrade, downgrade = tables_created(password_resets)
