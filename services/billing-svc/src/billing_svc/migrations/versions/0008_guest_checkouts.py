"""Guest checkouts: a card hold placed on-session (3-D Secure in the guest's browser) before
the charger is started."""

from billing_svc.checkout_tables import guest_checkouts
from plugpay_platform.table_migrations import tables_created

revision = "0008"
down_revision = "0007"

upgrade, downgrade = tables_created(guest_checkouts)
