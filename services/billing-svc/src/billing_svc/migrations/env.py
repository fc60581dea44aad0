"""Alembic environment of billing-svc (its own history, its own tables)."""

from billing_svc.tables import metadata
from plugpay_platform.migrations import run_env

run_env(metadata)
