"""Alembic environment of station-gateway (its own history, its own tables)."""

from plugpay_platform.migrations import run_env
from station_gateway.tables import metadata

run_env(metadata)
