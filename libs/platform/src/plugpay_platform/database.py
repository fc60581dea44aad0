"""Engine and sessions: typed read and write sessions, one commit per request or event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NewType

from sqlalchemy import text
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
            await session.execute(text("SET TRANSACTION READ ONLY"))
            yield ReadSession(session)

    async def ping(self) -> None:
        """Raise if the database cannot answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
