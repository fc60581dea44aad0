"""OCPP 2.1 C25 ad hoc payment by dynamic QR code: each station's WebPaymentsCtrlr terms and
the per-connector lock while a payer is on the landing page.
"""

from alembic import op
from plugpay_platform.migrations import create_platform_tables
from station_gateway import tables

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    create_platform_tables(op, tables.web_payment_terms, tables.web_payment_locks)


def downgrade() -> None:
    op.drop_table("web_payment_locks")
    op.drop_table("web_payment_terms")
