"""Engine and sessions: typed read and write sessions, one commit per request or event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NewType

from sqlalchemy import text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.engine: AsyncEngine = create_async_engine(
            asyncpg_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            echo=echo,
        )
        # The pre-ping stays (a service survives a PostgreSQL restart without a failed request)
        # but costs one round trip, not asyncpg's three (BEGIN, ;, ROLLBACK: kept there for
        # pgbouncer's transaction mode, which Plugpay does not use).
        self.engine.sync_engine.dialect.do_ping = _ping_in_one_round_trip  # type: ignore[method-assign]
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


def _ping_in_one_round_trip(dbapi_connection: DBAPIConnection) -> bool:
    """The pool's pre-ping as one simple query; a failure is raised as the DBAPI error the
    dialect recognises as a disconnect, so the pool reconnects instead of failing a request."""
    from sqlalchemy.util import await_

    adapted: Any = dbapi_connection
    try:
        await_(adapted.driver_connection.execute("SELECT 1"))
    except Exception as error:
        adapted._handle_exception(error)
    return True
