"""The column helpers of service migrations emit exactly the ALTER TABLE statements they name."""

from __future__ import annotations

import io

from alembic.migration import MigrationContext
from alembic.operations import Operations
from plugpay_platform.migrations import add_columns, columns_added, drop_columns

COLUMNS = {
    "receipts": {"buyer_vat_id": "VARCHAR(20)", "mails_requested": "INTEGER NOT NULL DEFAULT 0"},
    "refunds": {"credit_note_number": "VARCHAR(40)"},
}


def _sql(step: object) -> list[str]:
    """The statements ``step`` emits, from Alembic's offline (as-SQL) mode."""
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="postgresql", opts={"as_sql": True, "output_buffer": buffer}
    )
    with Operations.context(context):
        assert callable(step)
        step()
    return [s.strip() for s in buffer.getvalue().split(";") if s.strip()]


def test_add_columns_adds_each_column_where_missing_in_order() -> None:
    assert _sql(lambda: add_columns(COLUMNS)) == [
        "ALTER TABLE receipts ADD COLUMN IF NOT EXISTS buyer_vat_id VARCHAR(20)",
        "ALTER TABLE receipts ADD COLUMN IF NOT EXISTS mails_requested INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE refunds ADD COLUMN IF NOT EXISTS credit_note_number VARCHAR(40)",
    ]


def test_drop_columns_undoes_last_column_first() -> None:
    assert _sql(lambda: drop_columns(COLUMNS)) == [
        "ALTER TABLE refunds DROP COLUMN IF EXISTS credit_note_number",
        "ALTER TABLE receipts DROP COLUMN IF EXISTS mails_requested",
        "ALTER TABLE receipts DROP COLUMN IF EXISTS buyer_vat_id",
    ]


def test_columns_added_is_the_upgrade_and_downgrade_pair() -> None:
    upgrade, downgrade = columns_added(COLUMNS)
    assert _sql(upgrade) == _sql(lambda: add_columns(COLUMNS))
    assert _sql(downgrade) == _sql(lambda: drop_columns(COLUMNS))
