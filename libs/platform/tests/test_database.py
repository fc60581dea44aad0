"""The shared Database against real PostgreSQL: read-only units of work refuse writes without
a round trip of their own, the pool gives the connection back writable, and the one-round-trip
pre-ping still replaces a connection the server dropped (no failed request after a restart)."""

from __future__ import annotations

import pytest
from plugpay_platform.database import Database
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

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


async def test_a_connection_the_server_dropped_is_replaced_at_checkout(database_url: str) -> None:
    database = Database(database_url, pool_size=1)
    try:
        async with database.write() as db:
            pid = await db.scalar(text("SELECT pg_backend_pid()"))
        admin = Database(database_url, pool_size=1)  # another connection drops it, as a restart
        try:
            async with admin.write() as other:
                assert await other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await admin.dispose()
        async with database.read() as db:  # the pooled connection is dead: pinged, replaced
            assert await db.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        await database.dispose()
