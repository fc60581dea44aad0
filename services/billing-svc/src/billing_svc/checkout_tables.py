"""The guest checkout's table: a card hold placed with the guest on the page, before the scan.

Kept apart from ``tables.py`` (created by migration 0008, not by 0002's metadata sweep).
"""

from __future__ import annotations

from plugpay_platform.columns import created_at, updated_at
from sqlalchemy import BigInteger, Column, DateTime, String, Table, Text, Uuid

from billing_svc.tables import metadata

guest_checkouts = Table(
    # One per guest (a guest token's fresh user id pays one session): the PaymentIntent placed
    # on-session, 3-D Secure included, that the guest's session then uses as its card hold.
    "guest_checkouts",
    metadata,
    Column("user_id", Uuid, primary_key=True),
    Column("payment_method_id", Uuid, nullable=False),
    Column("intent_id", String(100), nullable=True),  # none: declined at once
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    # requires_action, held, refused, used (by session_id), released
    Column("status", String(20), nullable=False),
    Column("reason", String(60), nullable=True),
    Column("redirect_url", Text, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("session_id", Uuid, nullable=True),
    created_at(),
    updated_at(),
)
