"""Alembic environment of pricing-svc (its own history, its own tables)."""

from plugpay_platform.migrations import run_env
from pricing_svc.tables import metadata

run_env(metadata)
