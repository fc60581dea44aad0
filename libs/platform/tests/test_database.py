"""The shared Database against real PostgreSQL: read-only units of work refuse writes without
a round trip of their own, the pool gives the connection back writable, a connection the server
closed is replaced without a failed request, and only an idle one is pinged first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from plugpay_platform.database import Database
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.infra


async def test_read_is_read_only_and_the_connection_goes_back_writable(database_url: str) -> None:
    database = Database(database_url, pool_size=1)  # the same connection every time
    try:
        async with database.write() as db:
            await db.execute(text("CREATE TABLE things (n int)"))
        with pytest.raises(DBAPIError, match="read-only transaction"):
            async with database.read() as db:
                assert (await db.scalar(text("SHOW transaction_read_only"))) == "on"
                await db.execute(text("INSERT INTO things VALUES (1)"))
        async with database.write() as db:
            assert (await db.scalar(text("SHOW transaction_read_only"))) == "off"
            await db.execute(text("INSERT INTO things VALUES (2)"))
        async with database.read() as db:
            assert (await db.scalar(text("SELECT array_agg(n) FROM things"))) == [2]
    finally:
        await database.dispose()


async def test_a_connection_the_server_closed_is_replaced_at_checkout(database_url: str) -> None:
    async with _one_connection(database_url) as database:
        async with database.write() as db:
            pid = await _backend_pid(db)
            closed = asyncio.Event()
            driver = (await (await db.connection()).get_raw_connection()).driver_connection
            driver.add_termination_listener(lambda *_: closed.set())
        await _terminate(database_url, pid)  # as a restart does
        await closed.wait()  # the driver has read the server's goodbye
        async with database.read() as db:  # replaced without a request failing
            assert await _backend_pid(db) != pid


async def test_an_idle_connection_dropped_unnoticed_is_pinged_and_replaced(
    database_url: str,
) -> None:
    async with _one_connection(database_url, ping_idle_after_s=0) as database:  # always idle
        async with database.write() as db:
            pid = await _backend_pid(db)
        _terminate_unnoticed(database_url, pid)
        async with database.read() as db:
            assert await _backend_pid(db) != pid


async def test_a_connection_used_a_moment_ago_is_trusted_and_one_unit_of_work_pays(
    database_url: str,
) -> None:
    """No round trip before a connection in steady use: if it died unnoticed, the unit of work
    fails as lost (a 503 with Retry-After at the edge) and the next one gets a new connection."""
    async with _one_connection(database_url) as database:
        async with database.write() as db:
            pid = await _backend_pid(db)
        _terminate_unnoticed(database_url, pid)
        with pytest.raises(DBAPIError) as lost:
            async with database.read() as db:
                await db.scalar(text("SELECT 1"))
        assert lost.value.connection_invalidated
        async with database.read() as db:
            assert await _backend_pid(db) != pid


@asynccontextmanager
async def _one_connection(database_url: str, **options: float) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=1, **options)
    try:
        yield database
    finally:
        await database.dispose()


async def _backend_pid(db: AsyncSession) -> int:
    return int(await db.scalar(text("SELECT pg_backend_pid()")))


async def _terminate(database_url: str, pid: int) -> None:
    """End a backend from another connection and wait until its process is gone."""
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)
    finally:
        await conn.close()


def _terminate_unnoticed(database_url: str, pid: int) -> None:
    """``_terminate`` on another thread while this event loop is held: the pooled connection is
    dead but its driver has not read that yet (as a link dropped without a goodbye)."""
    thread = threading.Thread(target=asyncio.run, args=(_terminate(database_url, pid),))
    thread.start()
    thread.join()
