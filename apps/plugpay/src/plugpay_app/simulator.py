"""Simulated charge points on the `ocpp` library, for demos, tests and load."""

from __future__ import annotations


async def run_fleet(base_url: str, *, count: int, password: str) -> None:
    """Connect ``count`` simulated stations to ``base_url`` and keep them running."""
    return None
