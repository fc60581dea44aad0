"""The only module of notification-svc with SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plugpay_platform.rows import record_from_row
from sqlalchemy import Column, Integer, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_svc.domain import Contact, MailKind, MailState
from notification_svc.tables import contacts, mails, session_drivers

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True)
class QueuedMail:
    """A mail to deliver, as the sender loop claims it."""

    id: int
    event_id: uuid.UUID
    kind: str
    to_address: str
    subject: str
    text_body: str
    html_body: str | None
    attempts: int
    attachment_name: str | None = None
    attachment: bytes | None = None


@dataclass(frozen=True)
class MailRecord:
    """One row of the delivery log (no bodies)."""

    id: int
    kind: str
    to_address: str | None
    subject: str
    state: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None


def _mail_columns(record: type[DataclassInstance]) -> list[Column[Any]]:
    """The columns of ``mails`` that ``record``'s fields are named after, in field order."""
    return [mails.c[f.name] for f in fields(record)]


# What every session's receipt runs, built once: building a statement and its cache key costs
# more CPU than running it (docs/performance.md).
_ADD_CONTACT = pg_insert(contacts).values(user_id=bindparam("user_id")).on_conflict_do_nothing()
_CONTACT = select(contacts).where(contacts.c.user_id == bindparam("user_id"))
_CONTACT_LOCKED = _CONTACT.with_for_update()
_LEARN_SESSION = pg_insert(session_drivers).on_conflict_do_nothing()
_SESSION_DRIVER = select(session_drivers.c.user_id).where(
    session_drivers.c.session_id == bindparam("session_id")
)
_SESSION_STATION = select(session_drivers.c.station_id).where(
    session_drivers.c.session_id == bindparam("session_id")
)
_ENQUEUE = (
    pg_insert(mails).on_conflict_do_nothing(constraint="uq_mails_event_kind").returning(mails.c.id)
)
_CLAIM_DUE = (
    update(mails)
    .where(
        mails.c.id.in_(
            select(mails.c.id)
            .where(
                mails.c.state.in_(("queued", "sending")),
                mails.c.next_attempt_at <= bindparam("now"),
            )
            .order_by(mails.c.next_attempt_at, mails.c.id)
            .limit(bindparam("limit", type_=Integer()))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(state="sending", attempts=mails.c.attempts + 1, next_attempt_at=bindparam("lease"))
    .returning(*_mail_columns(QueuedMail))
)
_MARK_SENT = (
    update(mails)
    .where(mails.c.id == bindparam("mail_id"))
    .values(
        state="sent",
        sent_at=bindparam("at", type_=mails.c.sent_at.type),
        text_body=None,
        html_body=None,
        attachment=None,
        last_error=None,
    )
)


def _contact(row: Any) -> Contact:
    return Contact(str(row.user_id), row.email, row.receipts)


class NotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- contacts -------------------------------------------------------------------------

    async def learn_email(
        self, user_id: uuid.UUID, email: str, at: datetime, waited_since: datetime
    ) -> None:
        """The user's current address (the newest event's); mails queued since
        ``waited_since`` that waited for it are sent (older ones are not news any more)."""
        await self._set_contact(user_id, at, email=email)
        await self.session.execute(
            update(mails)
            .where(
                mails.c.user_id == user_id,
                mails.c.state == "awaiting_address",
                mails.c.created_at >= waited_since,
            )
            .values(to_address=email, state="queued", next_attempt_at=func.now())
        )

    async def mark_verified(self, user_id: uuid.UUID, at: datetime) -> None:
        await self._set_contact(user_id, at, verified=True)

    async def set_receipts(self, user_id: uuid.UUID, receipts: bool, at: datetime) -> None:
        await self._set_contact(user_id, at, receipts=receipts)

    async def _set_contact(self, user_id: uuid.UUID, at: datetime, **values: object) -> None:
        """Set ``values`` on the user's contact (made if unknown), as changed ``at``."""
        changed = {**values, "updated_at": at}
        await self.session.execute(
            pg_insert(contacts)
            .values(user_id=user_id, **changed)
            .on_conflict_do_update(index_elements=[contacts.c.user_id], set_=changed)
        )

    async def contact_for_mail(self, user_id: uuid.UUID) -> Contact:
        """The contact, row-locked until the commit (created empty if unknown), so a mail
        queued to wait for the address and the event teaching the address serialise: either
        the address is seen here, or ``learn_email`` sees the waiting mail."""
        await self.session.execute(_ADD_CONTACT, {"user_id": user_id})
        row = (await self.session.execute(_CONTACT_LOCKED, {"user_id": user_id})).one()
        return _contact(row)

    async def contact(self, user_id: uuid.UUID) -> Contact | None:
        row = (await self.session.execute(_CONTACT, {"user_id": user_id})).first()
        if row is None:
            return None
        return _contact(row)

    # --- sessions ---------------------------------------------------------------------------

    async def learn_session(
        self, session_id: uuid.UUID, user_id: uuid.UUID, station_id: str
    ) -> None:
        await self.session.execute(
            _LEARN_SESSION,
            {"session_id": session_id, "user_id": user_id, "station_id": station_id},
        )

    async def session_driver(self, session_id: uuid.UUID) -> uuid.UUID | None:
        return await self.session.scalar(_SESSION_DRIVER, {"session_id": session_id})

    async def session_station(self, session_id: uuid.UUID) -> str | None:
        return await self.session.scalar(_SESSION_STATION, {"session_id": session_id})

    # --- the mail queue -------------------------------------------------------------------

    async def enqueue(
        self,
        *,
        event_id: uuid.UUID,
        kind: MailKind,
        user_id: uuid.UUID,
        to_address: str | None,
        subject: str,
        text_body: str,
        html_body: str,
        attachment: tuple[str, bytes] | None = None,
    ) -> bool:
        """Queue a mail; False if this event's mail of this kind exists (a second guard
        behind the inbox)."""
        result = await self.session.execute(
            _ENQUEUE,
            {
                "event_id": event_id,
                "kind": kind,
                "user_id": user_id,
                "to_address": to_address,
                "subject": subject,
                "text_body": text_body,
                "html_body": html_body,
                "attachment_name": attachment[0] if attachment else None,
                "attachment": attachment[1] if attachment else None,
                "state": "queued" if to_address else "awaiting_address",
            },
        )
        return result.first() is not None

    async def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[QueuedMail]:
        """Take up to ``limit`` due mails for sending until ``lease_until`` (the caller commits
        before it sends: no lock is held during SMTP). A sender that dies leaves its mails
        ``sending``; they are due again when the lease ends."""
        result = await self.session.execute(
            _CLAIM_DUE, {"now": now, "limit": limit, "lease": lease_until}
        )
        claimed = [record_from_row(QueuedMail, row) for row in result.all()]
        return sorted(claimed, key=lambda m: m.id)

    async def mark_sent(self, mail_id: int, at: datetime) -> None:
        await self.session.execute(_MARK_SENT, {"mail_id": mail_id, "at": at})

    async def mark_failed(
        self, mail_id: int, state: MailState, next_attempt_at: datetime | None, error: str
    ) -> None:
        values: dict[str, object] = {"state": state, "last_error": error[:500]}
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        if state == "failed":
            values.update(text_body=None, html_body=None, attachment=None)
        await self.session.execute(update(mails).where(mails.c.id == mail_id).values(**values))

    async def mails_of(self, user_id: uuid.UUID, limit: int = 50) -> list[MailRecord]:
        rows = await self.session.execute(
            select(*_mail_columns(MailRecord))
            .where(mails.c.user_id == user_id)
            .order_by(mails.c.id.desc())
            .limit(limit)
        )
        return [record_from_row(MailRecord, row) for row in rows.all()]

    async def backlog(self) -> int:
        result = await self.session.execute(
            select(func.count()).where(mails.c.state.in_(("queued", "sending")))
        )
        return int(result.scalar_one())
