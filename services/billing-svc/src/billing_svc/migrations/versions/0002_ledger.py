"""The double-entry ledger and billing tables; ledger rows are append-only."""

from alembic import op
from billing_svc.tables import BILLING_TABLES, LEDGER_TABLES
from plugpay_platform.table_migrations import tables_created

revision = "0002"
down_revision = "0001"

IMMUTABLE = """
CREATE OR REPLACE FUNCTION ledger_rows_are_immutable() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'ledger rows are immutable: % on %', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END $$ LANGUAGE plpgsql;
"""

create_tables, drop_tables = tables_created(*LEDGER_TABLES, *BILLING_TABLES)


def upgrade() -> None:
    create_tables()
    op.execute(IMMUTABLE)
    for name in ("transfers", "ledger_entries"):
        op.execute(
            f"CREATE TRIGGER {name}_immutable BEFORE UPDATE OR DELETE ON {name}"
            " FOR EACH ROW EXECUTE FUNCTION ledger_rows_are_immutable()"
        )


def downgrade() -> None:
    drop_tables()
    op.execute("DROP FUNCTION IF EXISTS ledger_rows_are_immutable()")
