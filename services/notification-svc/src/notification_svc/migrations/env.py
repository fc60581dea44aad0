"""Alembic environment of notification-svc (its own history, its own tables)."""

from notification_svc.tables import metadata
from plugpay_platform.migrations import run_env

run_env(metadata)
