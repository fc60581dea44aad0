"""Scan claims by time: admission control counts the recent ones still waiting."""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    # 0002 creates tables as tables.py defines them today, so a new database has it already.
    op.execute("CREATE INDEX IF NOT EXISTS ix_scan_claims_claimed_at ON scan_claims (claimed_at)")


def downgrade() -> None:
    op.drop_index("ix_scan_claims_claimed_at", table_name="scan_claims")
