"""billing-svc's schema: its own tables plus the outbox and inbox."""

from __future__ import annotations

from plugpay_events.outbox import define_outbox_tables
from sqlalchemy import MetaData

metadata = MetaData()
outbox_tables = define_outbox_tables(metadata)
