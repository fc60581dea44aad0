"""Alembic environment of auth-svc (its own history, its own tables)."""

from auth_svc.tables import metadata
from plugpay_platform.migrations import run_env

run_env(metadata)
