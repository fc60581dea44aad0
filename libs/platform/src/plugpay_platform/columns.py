"""Column shapes every service's tables.py repeats: when a row was made or last changed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, func


def recorded_at(name: str) -> Column[datetime]:
    """A UTC-aware moment the database stamps when the row is written (``now()``)."""
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


def created_at() -> Column[datetime]:
    """When the row was made."""
    return recorded_at("created_at")


def updated_at() -> Column[datetime]:
    """When the row last changed: set by the repository's UPDATEs, ``now()`` at first."""
    return recorded_at("updated_at")
