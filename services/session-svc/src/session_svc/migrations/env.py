"""Alembic environment of session-svc (its own history, its own tables)."""

from plugpay_platform.migrations import run_env
from session_svc.tables import metadata

run_env(metadata)
