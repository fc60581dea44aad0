"""The outbox and inbox every service has."""

from plugpay_platform.migrations import outbox_and_inbox
from session_svc.tables import outbox_tables

revision = "0001"
down_revision = None

upgrade, downgrade = outbox_and_inbox(outbox_tables)
