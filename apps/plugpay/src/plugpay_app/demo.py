"""Demo data (README): fixed stations, operator and drivers, created once, in any mode."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


async def seed_embedded() -> None:
    """Seed the demo data into the embedded installation (idempotent)."""
    log.info("demo data: waiting for the services' seed functions")
