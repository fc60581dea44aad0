"""Invoices and credit notes: the organisations' legal profiles, the gapless document counters,
the stations invoices name, and the invoice facts on receipts and refunds; when a card's expiry
was noticed (a no-op on a fresh database, where 0002 creates every table from the current
metadata).
"""

from alembic import op
from billing_svc.tables import document_counters, legal_profiles, stations
from plugpay_platform.migrations import add_columns, create_platform_tables, drop_columns

revision = "0005"
down_revision = "0004"

COLUMNS = {
    "receipts": {
        "invoice_number": "VARCHAR(40)",
        "seller": "JSONB",
        "station": "JSONB",
        "time_zone": "VARCHAR(64)",
        "buyer_email": "VARCHAR(254)",
    },
    "refunds": {"credit_note_number": "VARCHAR(40)"},
    "billing_accounts": {"email": "VARCHAR(254)"},
    "payment_methods": {"expiry_noticed_at": "TIMESTAMPTZ"},
}
INDEXES = {
    "ux_receipts_invoice_number": "receipts (organisation_id, invoice_number)",
    "ux_refunds_credit_note_number": "refunds (organisation_id, credit_note_number)",
}
NEW_TABLES = (legal_profiles, document_counters, stations)


def upgrade() -> None:
    add_columns(COLUMNS)
    for name, target in INDEXES.items():
        op.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {target}")
    create_platform_tables(op, *NEW_TABLES)


def downgrade() -> None:
    for table in reversed(NEW_TABLES):
        table.drop(op.get_bind(), checkfirst=True)
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    drop_columns(COLUMNS)
