"""The migrations that add columns (0003 to 0007, 0009) go down to 0002 and back up."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from alembic import command
from plugpay_platform.database import asyncpg_url
from plugpay_platform.migrations import alembic_config, upgrade_to_head
from station_gateway.app import MIGRATIONS

pytestmark = pytest.mark.infra

ADDED = {
    "connector_status": {"reported_at"},
    "sessions": {
        "authorized_at",
        "start_received_at",
        "meter_judgement",
        "start_deadline",
        "hold_amount_minor",
        "free_of_charge",
        "guest",
    },
    "station_presence": {"card_refused_at"},
}


async def _columns(conn: asyncpg.Connection, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
    )
    return {r["column_name"] for r in rows}


async def test_column_migrations_go_down_to_0002_and_up_again(database_url: str) -> None:
    await upgrade_to_head(MIGRATIONS, database_url)
    conn = await asyncpg.connect(asyncpg_url(database_url).replace("+asyncpg", ""))
    try:
        config = alembic_config(MIGRATIONS, database_url)
        await asyncio.to_thread(command.downgrade, config, "0002")
        for table, columns in ADDED.items():
            assert not columns & await _columns(conn, table), table
        await upgrade_to_head(MIGRATIONS, database_url)
        for table, columns in ADDED.items():
            assert columns <= await _columns(conn, table), table
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0009"
    finally:
        await conn.close()
