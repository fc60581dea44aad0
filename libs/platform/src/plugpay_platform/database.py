"""Engine and sessions: typed read and write sessions, one commit per request or event."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NewType

from sqlalchemy import event, exc, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_

ReadSession = NewType("ReadSession", AsyncSession)
"""A session in a READ ONLY transaction: repositories' queries only."""
WriteSession = NewType("WriteSession", AsyncSession)
"""A session whose transaction commits once, when the unit of work ends without error."""


def asyncpg_url(url: str) -> str:
    """Normalise postgres:// and postgresql:// URLs to SQLAlchemy's asyncpg form."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class Database:
    """A service's database: one engine, sessions handed out per unit of work."""

    def __init__(
        self, url: str, *, pool_size: int = 10, echo: bool = False, ping_idle_after_s: float = 5.0
    ) -> None:
        self.engine: AsyncEngine = create_async_engine(
            asyncpg_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            echo=echo,
        )
        _check_connections_at_checkout(self.engine, ping_idle_after_s)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteSession]:
        """A unit of work: commits once at the end, rolls back on any error."""
        async with self.sessions() as session, session.begin():
            yield WriteSession(session)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[ReadSession]:
        """A read-only unit of work (PostgreSQL refuses writes in it)."""
        async with self.sessions() as session, session.begin():
            # BEGIN READ ONLY when the first query starts the transaction: no extra round
            # trip; the pool resets the characteristic when the connection goes back.
            await session.connection(execution_options={"postgresql_readonly": True})
            yield ReadSession(session)

    async def ping(self) -> None:
        """Raise if the database cannot answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _check_connections_at_checkout(engine: AsyncEngine, ping_idle_after_s: float) -> None:
    """A service survives a PostgreSQL restart without a failed request, without a round trip
    per unit of work (SQLAlchemy's pre-ping was half of a busy service's transactions).

    A connection the server closed (a restart, a terminated backend) is known to the driver
    without asking: it and every older pooled connection are replaced. Only a connection that
    sat idle for ``ping_idle_after_s`` is pinged first, in one round trip, because a silent drop
    (a firewall's idle timeout, a moved server) is only found by asking. What is given up: a
    connection dropped without the driver noticing in the moments since it was last used fails
    that one unit of work (a request answers 503 with Retry-After; a consumer's event is
    delivered again), and the pool replaces it."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _taken(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        _proxy: PoolProxiedConnection,
    ) -> None:
        driver: Any = dbapi_connection.driver_connection
        if driver.is_closed():
            raise exc.InvalidatePoolError("the server closed the connection")
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < ping_idle_after_s:
            return  # new, or in use a moment ago
        try:
            await_(driver.execute("SELECT 1"))
        except Exception as error:
            raise exc.InvalidatePoolError(
                f"the idle connection did not answer: {error!r}"
            ) from error


_RETURNED_AT = "plugpay_returned_at"
