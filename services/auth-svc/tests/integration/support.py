"""Helpers of the integration tests that hold the clock or pick the caller's address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


class Clock:
    """The service's clock, moved by the test instead of by waiting."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@asynccontextmanager
async def from_address(auth: Any, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client on ``auth``'s app whose requests come from ``address``."""
    transport = httpx.ASGITransport(app=auth.app, client=(address, 41000))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
        yield client
