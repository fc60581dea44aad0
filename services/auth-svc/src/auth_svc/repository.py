"""The only module of auth-svc with SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugpay_platform.rows import column_values, record_from_row
from plugpay_platform.throttle import ThrottleState
from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth_svc.credentials import SigningKey
from auth_svc.domain import Account, RefreshToken
from auth_svc.tables import (
    email_verifications,
    group_invitations,
    group_members,
    login_throttle,
    organisations,
    password_resets,
    refresh_tokens,
    signing_keys,
    station_credentials,
    stations,
    user_groups,
    users,
)


@dataclass(frozen=True)
class StoredUser:
    """A user row with its groups."""

    account: Account
    password_hash: str


@dataclass(frozen=True)
class Organisation:
    id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Station:
    id: str
    organisation_id: uuid.UUID
    name: str
    connectors: list[dict[str, Any]]
    latitude: float | None
    longitude: float | None
    address: str | None
    registered_at: datetime
    credential_set_at: datetime | None = None
    security_profile: int | None = None


class AuthRepository:
    """Queries over one session; the caller's unit of work commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- users -------------------------------------------------------------------------

    async def _groups_of(self, user_id: uuid.UUID) -> tuple[str, ...]:
        rows = await self.session.scalars(
            select(group_members.c.group_name)
            .where(group_members.c.user_id == user_id)
            .order_by(group_members.c.group_name)
        )
        return tuple(rows)

    async def _stored(self, row: Any) -> StoredUser | None:
        if row is None:
            return None
        account = Account(
            user_id=row.id,
            email=row.email,
            roles=tuple(row.roles),
            organisation_id=row.organisation_id,
            groups=await self._groups_of(row.id),
            email_verified=row.email_verified_at is not None,
        )
        return StoredUser(account, row.password_hash)

    async def user_by_email(self, email: str) -> StoredUser | None:
        row = (await self.session.execute(select(users).where(users.c.email == email))).first()
        return await self._stored(row)

    async def user_by_id(
        self, user_id: uuid.UUID, *, for_update: bool = False
    ) -> StoredUser | None:
        query = select(users).where(users.c.id == user_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return await self._stored(row)

    async def add_user(
        self,
        *,
        user_id: uuid.UUID,
        email: str,
        password_hash: str,
        roles: tuple[str, ...],
        organisation_id: uuid.UUID | None,
        verified_at: datetime | None,
    ) -> bool:
        """Insert a user; False when the email is taken."""
        result = await self.session.execute(
            pg_insert(users)
            .values(
                id=user_id,
                email=email,
                password_hash=password_hash,
                roles=list(roles),
                organisation_id=organisation_id,
                email_verified_at=verified_at,
            )
            .on_conflict_do_nothing(index_elements=[users.c.email])
            .returning(users.c.id)
        )
        return result.first() is not None

    async def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        await self.session.execute(
            update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )

    async def mark_verified(self, user_id: uuid.UUID, at: datetime) -> bool:
        """True when the user was unverified until now."""
        result = await self.session.execute(
            update(users)
            .where(users.c.id == user_id, users.c.email_verified_at.is_(None))
            .values(email_verified_at=at)
            .returning(users.c.id)
        )
        return result.first() is not None

    # --- email verification ------------------------------------------------------------

    async def add_verification(
        self, token_hash: bytes, user_id: uuid.UUID, expires_at: datetime
    ) -> None:
        await self._add_link(email_verifications, token_hash, user_id, expires_at)

    async def use_verification(self, token_hash: bytes, now: datetime) -> uuid.UUID | None:
        """Consume an unused, unexpired verification token; its user, or None."""
        return await self._use_link(email_verifications, token_hash, now)

    async def verification_state(self, token_hash: bytes, now: datetime) -> str:
        """Why a verification code was refused: ``used``, ``expired`` or ``unknown``."""
        return await self._link_state(email_verifications, token_hash, now)

    # One-time links (email verification, password reset): a row per code, used at most once.

    async def _add_link(
        self,
        table: Any,
        token_hash: bytes,
        user_id: uuid.UUID,
        expires_at: datetime,
        **columns: object,
    ) -> None:
        await self.session.execute(
            insert(table).values(
                token_hash=token_hash, user_id=user_id, expires_at=expires_at, **columns
            )
        )

    async def _use_link(self, table: Any, token_hash: bytes, now: datetime) -> uuid.UUID | None:
        result = await self.session.execute(
            update(table)
            .where(
                table.c.token_hash == token_hash,
                table.c.used_at.is_(None),
                table.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(table.c.user_id)
        )
        user_id: uuid.UUID | None = result.scalar_one_or_none()
        return user_id

    async def _link_state(self, table: Any, token_hash: bytes, now: datetime) -> str:
        row = (
            await self.session.execute(
                select(table.c.used_at, table.c.expires_at).where(table.c.token_hash == token_hash)
            )
        ).first()
        if row is None:
            return "unknown"
        if row.used_at is not None:
            return "used"
        return "expired" if row.expires_at <= now else "valid"

    # --- password reset ----------------------------------------------------------------

    async def add_password_reset(
        self, token_hash: bytes, user_id: uuid.UUID, expires_at: datetime
    ) -> None:
        await self._add_link(password_resets, token_hash, user_id, expires_at)

    async def use_password_reset(self, token_hash: bytes, now: datetime) -> uuid.UUID | None:
        """Consume an unused, unexpired reset code, and every other open code of its user (a
        new password makes older links pointless); its user, or None."""
        user_id = await self._use_link(password_resets, token_hash, now)
        if user_id is not None:
            await self.session.execute(
                update(password_resets)
                .where(password_resets.c.user_id == user_id, password_resets.c.used_at.is_(None))
                .values(used_at=now)
            )
        return user_id

    async def password_reset_owner(self, token_hash: bytes) -> uuid.UUID | None:
        result = await self.session.execute(
            select(password_resets.c.user_id).where(password_resets.c.token_hash == token_hash)
        )
        user_id: uuid.UUID | None = result.scalar_one_or_none()
        return user_id

    async def password_reset_state(self, token_hash: bytes, now: datetime) -> str:
        """Why a reset code was refused: ``used``, ``expired`` or ``unknown``."""
        return await self._link_state(password_resets, token_hash, now)

    async def revoke_all_refresh_tokens(self, user_id: uuid.UUID, at: datetime) -> int:
        """Revoke every refresh-token family of the user; how many tokens were live."""
        result = await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # --- organisations and groups ------------------------------------------------------

    async def add_organisation(self, org_id: uuid.UUID, name: str, at: datetime) -> bool:
        result = await self.session.execute(
            pg_insert(organisations)
            .values(id=org_id, name=name, created_at=at)
            .on_conflict_do_nothing(index_elements=[organisations.c.name])
            .returning(organisations.c.id)
        )
        return result.first() is not None

    async def organisation(self, org_id: uuid.UUID) -> Organisation | None:
        row = (
            await self.session.execute(select(organisations).where(organisations.c.id == org_id))
        ).first()
        return record_from_row(Organisation, row) if row else None

    async def organisation_by_name(self, name: str) -> Organisation | None:
        row = (
            await self.session.execute(select(organisations).where(organisations.c.name == name))
        ).first()
        return record_from_row(Organisation, row) if row else None

    async def organisations(self) -> list[Organisation]:
        rows = await self.session.execute(select(organisations).order_by(organisations.c.name))
        return [record_from_row(Organisation, r) for r in rows]

    async def add_group(self, name: str, org_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            pg_insert(user_groups)
            .values(name=name, organisation_id=org_id)
            .on_conflict_do_nothing()
            .returning(user_groups.c.name)
        )
        return result.first() is not None

    async def group_organisation(self, name: str) -> uuid.UUID | None:
        return await self.session.scalar(
            select(user_groups.c.organisation_id).where(user_groups.c.name == name)
        )

    async def groups_of_organisation(self, org_id: uuid.UUID) -> list[tuple[str, list[str]]]:
        rows = await self.session.execute(
            select(user_groups.c.name, users.c.email)
            .select_from(
                user_groups.outerjoin(
                    group_members, group_members.c.group_name == user_groups.c.name
                ).outerjoin(users, users.c.id == group_members.c.user_id)
            )
            .where(user_groups.c.organisation_id == org_id)
            .order_by(user_groups.c.name, users.c.email)
        )
        grouped: dict[str, list[str]] = {}
        for name, email in rows:
            grouped.setdefault(name, [])
            if email:
                grouped[name].append(email)
        return list(grouped.items())

    async def add_member(self, group: str, user_id: uuid.UUID) -> None:
        await self.session.execute(
            pg_insert(group_members)
            .values(group_name=group, user_id=user_id)
            .on_conflict_do_nothing()
        )

    async def remove_member(self, group: str, user_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(group_members).where(
                group_members.c.group_name == group, group_members.c.user_id == user_id
            )
        )

    async def add_invitation(
        self, token_hash: bytes, group: str, user_id: uuid.UUID, expires_at: datetime
    ) -> None:
        await self._add_link(group_invitations, token_hash, user_id, expires_at, group_name=group)

    async def use_invitation(
        self, token_hash: bytes, user_id: uuid.UUID, now: datetime
    ) -> str | None:
        """Consume an unused, unexpired invitation of this user; its group, or None."""
        result = await self.session.execute(
            update(group_invitations)
            .where(
                group_invitations.c.token_hash == token_hash,
                group_invitations.c.user_id == user_id,
                group_invitations.c.used_at.is_(None),
                group_invitations.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(group_invitations.c.group_name)
        )
        group: str | None = result.scalar_one_or_none()
        return group

    # --- refresh tokens ----------------------------------------------------------------

    async def add_refresh_token(self, token: RefreshToken) -> None:
        # Stored as the digest's bytes; the record carries it as hex.
        values = {
            **column_values(token, refresh_tokens),
            "token_hash": bytes.fromhex(token.token_hash),
        }
        await self.session.execute(insert(refresh_tokens).values(values))

    async def refresh_token_for_update(self, token_hash: str) -> RefreshToken | None:
        row = (
            await self.session.execute(
                select(refresh_tokens)
                .where(refresh_tokens.c.token_hash == bytes.fromhex(token_hash))
                .with_for_update()
            )
        ).first()
        if row is None:
            return None
        return record_from_row(RefreshToken, row, token_hash=row.token_hash.hex())

    async def mark_refresh_used(self, token_hash: str, at: datetime) -> None:
        await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == bytes.fromhex(token_hash))
            .values(used_at=at)
        )

    async def revoke_family(self, family_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    # --- signing keys ------------------------------------------------------------------

    async def lock_signing_keys(self) -> None:
        """Serialise key creation and rotation between replicas (transaction-scoped)."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtext('auth_keys'))"))

    async def active_signing_key(self) -> SigningKey | None:
        row = (
            await self.session.execute(
                select(signing_keys).where(signing_keys.c.retired_at.is_(None))
            )
        ).first()
        return _key(row) if row else None

    async def published_signing_keys(self, retired_after: datetime) -> list[SigningKey]:
        """The active key and the retired ones whose tokens may still be valid."""
        rows = await self.session.execute(
            select(signing_keys)
            .where(
                or_(
                    signing_keys.c.retired_at.is_(None),
                    signing_keys.c.retired_at > retired_after,
                )
            )
            .order_by(signing_keys.c.created_at.desc())
        )
        return [_key(r) for r in rows]

    async def retire_signing_keys(self, at: datetime) -> None:
        await self.session.execute(
            update(signing_keys).where(signing_keys.c.retired_at.is_(None)).values(retired_at=at)
        )

    async def add_signing_key(self, key: SigningKey) -> None:
        await self.session.execute(insert(signing_keys).values(column_values(key, signing_keys)))

    # --- login throttling --------------------------------------------------------------

    async def throttle_states(self, keys: list[str]) -> dict[str, ThrottleState]:
        rows = await self.session.execute(
            select(login_throttle).where(login_throttle.c.key.in_(keys))
        )
        return {r.key: record_from_row(ThrottleState, r) for r in rows}

    async def lock_throttle_states(self, keys: list[str]) -> dict[str, ThrottleState]:
        """Create missing rows, then lock all of them in key order (no deadlocks)."""
        ordered = sorted(keys)
        await self.session.execute(
            pg_insert(login_throttle)
            .values([{"key": k, "failures": 0} for k in ordered])
            .on_conflict_do_nothing()
        )
        rows = await self.session.execute(
            select(login_throttle)
            .where(login_throttle.c.key.in_(ordered))
            .order_by(login_throttle.c.key)
            .with_for_update()
        )
        return {r.key: record_from_row(ThrottleState, r) for r in rows}

    async def save_throttle_state(self, key: str, state: ThrottleState) -> None:
        await self.session.execute(
            update(login_throttle)
            .where(login_throttle.c.key == key)
            .values(column_values(state, login_throttle))
        )

    async def clear_throttle(self, keys: list[str]) -> None:
        await self.session.execute(delete(login_throttle).where(login_throttle.c.key.in_(keys)))

    # --- stations ----------------------------------------------------------------------

    async def add_station(self, station: Station) -> bool:
        result = await self.session.execute(
            pg_insert(stations)
            .values(column_values(station, stations))
            .on_conflict_do_nothing()
            .returning(stations.c.id)
        )
        return result.first() is not None

    def _stations_query(self) -> Any:
        return select(
            stations,
            station_credentials.c.set_at.label("credential_set_at"),
            station_credentials.c.security_profile,
        ).select_from(
            stations.outerjoin(
                station_credentials, station_credentials.c.station_id == stations.c.id
            )
        )

    async def station(self, station_id: str) -> Station | None:
        row = (
            await self.session.execute(self._stations_query().where(stations.c.id == station_id))
        ).first()
        return _station(row) if row else None

    async def stations(self, org_id: uuid.UUID | None) -> list[Station]:
        query = self._stations_query().order_by(stations.c.id)
        if org_id is not None:
            query = query.where(stations.c.organisation_id == org_id)
        return [_station(r) for r in await self.session.execute(query)]

    async def set_station_credential(
        self, station_id: str, password_hash: str, security_profile: int, at: datetime
    ) -> None:
        statement = pg_insert(station_credentials).values(
            station_id=station_id,
            password_hash=password_hash,
            security_profile=security_profile,
            set_at=at,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[station_credentials.c.station_id],
                set_={
                    "password_hash": statement.excluded.password_hash,
                    "security_profile": statement.excluded.security_profile,
                    "set_at": statement.excluded.set_at,
                },
            )
        )

    async def count_users(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(users)) or 0)


def _key(row: Any) -> SigningKey:
    return record_from_row(SigningKey, row, public_jwk=dict(row.public_jwk))


def _station(row: Any) -> Station:
    return record_from_row(Station, row, connectors=list(row.connectors))
