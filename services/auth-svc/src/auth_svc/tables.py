"""auth-svc's schema: its own tables plus the outbox and inbox."""

from __future__ import annotations

from typing import Any

from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.columns import created_at
from sqlalchemy import (
    ARRAY,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
outbox_tables = define_outbox_tables(metadata)

organisations = Table(
    "organisations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    created_at(),
)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),  # stored lower-cased
    Column("password_hash", Text, nullable=False),
    Column("roles", ARRAY(String(20)), nullable=False),
    Column("organisation_id", Uuid, ForeignKey("organisations.id"), nullable=True),
    Column("email_verified_at", DateTime(timezone=True), nullable=True),
    created_at(),
)

# A group name belongs to one organisation, so an operator can only grant its own groups.
user_groups = Table(
    "user_groups",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("organisation_id", Uuid, ForeignKey("organisations.id"), nullable=False),
    created_at(),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_name", String(63), ForeignKey("user_groups.name"), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id"), primary_key=True),
    Index("ix_group_members_user", "user_id"),
)


def _single_use_link(name: str, *columns: Column[Any]) -> Table:
    """A link mailed to a user: good once, until it expires; only its code's sha256 is kept."""
    return Table(
        name,
        metadata,
        Column("token_hash", LargeBinary(32), primary_key=True),  # sha256 of a 256-bit secret
        *columns,
        Column("user_id", Uuid, ForeignKey("users.id"), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("used_at", DateTime(timezone=True), nullable=True),
    )


email_verifications = _single_use_link("email_verifications")

# Password reset links: 30 minutes.
password_resets = _single_use_link("password_resets")
Index("ix_password_resets_user", password_resets.c.user_id)

# A driver belongs to no organisation: an operator invites, the driver accepts.
group_invitations = _single_use_link(
    "group_invitations",
    Column("group_name", String(63), ForeignKey("user_groups.name"), nullable=False),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),  # sha256 of a 256-bit secret
    Column("family_id", Uuid, nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id"), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_refresh_tokens_family", "family_id"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    # Private key as PKCS#8 PEM; in production this column belongs in a KMS/HSM envelope.
    Column("private_pem", Text, nullable=False),
    Column("public_jwk", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    # At most one key signs at a time.
    Index(
        "ux_signing_keys_active",
        text("(retired_at IS NULL)"),
        unique=True,
        postgresql_where=text("retired_at IS NULL"),
    ),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(400), primary_key=True),  # "acct:<email>", "acct-ip:..", "ip:<addr>"
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", DateTime(timezone=True), nullable=True),
    Column("blocked_until", DateTime(timezone=True), nullable=True),
)

stations = Table(
    "stations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("organisation_id", Uuid, ForeignKey("organisations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("connectors", JSONB, nullable=False),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("address", String(500), nullable=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Index("ix_stations_organisation", "organisation_id"),
)

station_credentials = Table(
    "station_credentials",
    metadata,
    Column("station_id", String(64), ForeignKey("stations.id"), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("security_profile", SmallInteger, nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
)
