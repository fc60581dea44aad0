"""0003 to 0008 upgrade a database made before them (0002 creates tables from the metadata of
its time)."""

from __future__ import annotations

import asyncpg
import pytest
from billing_svc.app import MIGRATIONS
from plugpay_platform.database import asyncpg_url
from plugpay_platform.migrations import upgrade_to_head

pytestmark = pytest.mark.infra

ADDED = {
    "receipts": {
        "wallet_part",
        "card_part",
        "authorised_max",
        "claimed_total",
        "capped",
        "invoice_number",
        "seller",
        "station",
        "time_zone",
        "buyer_email",
        "buyer_vat_id",
        "mails_requested",
    },
    "billing_sessions": {"cost", "correlation_id", "causation_id", "max_cost"},
    "refunds": {"status", "credit_note_number"},
    "billing_accounts": {"email"},
    "payment_methods": {"expiry_noticed_at"},
}
NEW_TABLES = (
    "cost_overruns",
    "payment_declines",
    "processor_operations",
    "session_reviews",
    "legal_profiles",
    "document_counters",
    "stations",
    "guest_checkouts",
)
NEW_INDEXES = ("ux_receipts_invoice_number", "ux_refunds_credit_note_number")
HEAD = "0008"


async def test_0003_to_0008_add_their_columns_and_tables_to_an_older_schema(
    database_url: str,
) -> None:
    await upgrade_to_head(MIGRATIONS, database_url)
    dsn = asyncpg_url(database_url).replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    try:
        # what a 0002 database of before looked like
        for table, columns in ADDED.items():
            for column in columns:
                await conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        for table in NEW_TABLES:
            await conn.execute(f"DROP TABLE {table}")
        await conn.execute("UPDATE alembic_version SET version_num = '0002'")
        await upgrade_to_head(MIGRATIONS, database_url)
        for table, columns in ADDED.items():
            found = {
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1",
                    table,
                )
            }
            assert columns <= found, (table, columns - found)
        for table in (*NEW_TABLES, *NEW_INDEXES):
            assert await conn.fetchval("SELECT to_regclass($1)", table) is not None
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == HEAD
    finally:
        await conn.close()
