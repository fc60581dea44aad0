"""The only module with SQL: the ledger store and billing-svc's other tables.

Locking: a transfer locks its two account rows ``ORDER BY id`` (one global order, so two
transfers on the same accounts never deadlock), re-reads them, lets ``domain.plan_transfer``
decide, then writes the transfer, both balances and two history entries. A unit of work that
makes several transfers locks all its accounts up front with ``lock_accounts``. Nothing here
commits: the caller's unit of work does, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugpay_events.types import utc_now
from sqlalchemy import Row, and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import (
    Account,
    AccountKind,
    BalanceRule,
    Entry,
    LedgerRefusal,
    Transfer,
    TransferKind,
    TransferRequest,
    expected_accounts,
    plan_transfer,
)
from billing_svc.tables import (
    accounts,
    billing_accounts,
    billing_sessions,
    idempotency_keys,
    ledger_entries,
    payment_methods,
    processor_events,
    receipts,
    refunds,
    topups,
    transfers,
)


def _account(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        code=row.code,
        kind=AccountKind(row.kind),
        currency=row.currency,
        rule=BalanceRule(row.rule),
        owner_id=row.owner_id,
        debits_pending=row.debits_pending,
        debits_posted=row.debits_posted,
        credits_pending=row.credits_pending,
        credits_posted=row.credits_posted,
        entries=row.entries,
    )


def _transfer(row: Row[Any]) -> Transfer:
    return Transfer(
        id=row.id,
        kind=TransferKind(row.kind),
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        currency=row.currency,
        code=row.code,
        created_at=row.created_at,
        pending_id=row.pending_id,
        expires_at=row.expires_at,
        reference=row.reference,
    )


class LedgerRepository:
    """Accounts and transfers in PostgreSQL, with the rules of ``domain``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open(
        self, kind: AccountKind, currency: str, owner: uuid.UUID | None = None
    ) -> uuid.UUID:
        """Create the account if it does not exist yet; returns its (derived) id."""
        account = Account.open(kind, currency, owner)
        await self.session.execute(
            pg_insert(accounts)
            .values(
                id=account.id,
                code=account.code,
                kind=account.kind.value,
                currency=currency,
                rule=account.rule.value,
                owner_id=owner,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        return account.id

    async def account(self, account_id: uuid.UUID) -> Account | None:
        row = (
            await self.session.execute(select(accounts).where(accounts.c.id == account_id))
        ).first()
        return _account(row) if row else None

    async def lock_accounts(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]:
        """Lock rows in id order (the one global order) and return them as they are now."""
        wanted = sorted(set(ids))
        rows = (
            await self.session.execute(
                select(accounts)
                .where(accounts.c.id.in_(wanted))
                .order_by(accounts.c.id)
                .with_for_update(key_share=True)  # FOR NO KEY UPDATE: FK checks need not wait
            )
        ).all()
        return {row.id: _account(row) for row in rows}

    async def transfer(self, transfer_id: uuid.UUID) -> Transfer | None:
        row = (
            await self.session.execute(select(transfers).where(transfers.c.id == transfer_id))
        ).first()
        return _transfer(row) if row else None

    async def resolution_of(self, pending_id: uuid.UUID) -> Transfer | None:
        row = (
            await self.session.execute(
                select(transfers).where(transfers.c.pending_id == pending_id)
            )
        ).first()
        return _transfer(row) if row else None

    async def create_transfer(
        self, request: TransferRequest, now: datetime | None = None
    ) -> Transfer:
        """Create a transfer, or return the one with this id if it asked for the same thing."""
        now = now or utc_now()
        existing = await self.transfer(request.id)
        if existing is not None:
            return _same_or_refuse(existing, request)
        pending = await self.transfer(request.pending_id) if request.pending_id else None
        debit_id, credit_id = expected_accounts(request, pending)
        locked = await self.lock_accounts((debit_id, credit_id))
        debit, credit = locked.get(debit_id), locked.get(credit_id)
        if debit is None or credit is None:
            raise LedgerRefusal("account_not_found", "no such account")
        # Under the locks: a concurrent retry of this id has committed by now, if it ran.
        existing = await self.transfer(request.id)
        if existing is not None:
            return _same_or_refuse(existing, request)
        plan = plan_transfer(
            request,
            debit,
            credit,
            pending=pending,
            resolved_by=await self.resolution_of(pending.id) if pending else None,
            now=now,
        )
        t = plan.transfer
        await self.session.execute(
            insert(transfers).values(
                id=t.id,
                kind=t.kind.value,
                debit_account_id=t.debit_account_id,
                credit_account_id=t.credit_account_id,
                amount=t.amount,
                currency=t.currency,
                code=t.code,
                pending_id=t.pending_id,
                expires_at=t.expires_at,
                reference=t.reference,
                created_at=t.created_at,
            )
        )
        for after in (plan.debit, plan.credit):
            await self.session.execute(
                update(accounts)
                .where(accounts.c.id == after.id)
                .values(
                    debits_pending=after.debits_pending,
                    debits_posted=after.debits_posted,
                    credits_pending=after.credits_pending,
                    credits_posted=after.credits_posted,
                    entries=after.entries,
                )
            )
        await self.session.execute(
            insert(ledger_entries),
            [
                {
                    "account_id": e.account_id,
                    "seq": e.seq,
                    "transfer_id": e.transfer_id,
                    "code": e.code,
                    "posted_delta": e.posted_delta,
                    "held_delta": e.held_delta,
                    "balance_after": e.balance_after,
                    "held_after": e.held_after,
                    "reference": e.reference,
                    "created_at": e.created_at,
                }
                for e in plan.entries
            ],
        )
        return t

    async def entries(
        self, account_id: uuid.UUID, *, limit: int = 50, before_seq: int | None = None
    ) -> list[Entry]:
        """An account's history, newest first, with the running balance after each entry."""
        query = select(ledger_entries).where(ledger_entries.c.account_id == account_id)
        if before_seq is not None:
            query = query.where(ledger_entries.c.seq < before_seq)
        rows = (
            await self.session.execute(query.order_by(ledger_entries.c.seq.desc()).limit(limit))
        ).all()
        return [
            Entry(
                account_id=r.account_id,
                seq=r.seq,
                transfer_id=r.transfer_id,
                code=r.code,
                posted_delta=r.posted_delta,
                held_delta=r.held_delta,
                balance_after=r.balance_after,
                held_after=r.held_after,
                created_at=r.created_at,
                reference=r.reference,
            )
            for r in rows
        ]

    async def pending_holds(self, account_id: uuid.UUID) -> list[Transfer]:
        """Unresolved pending transfers debiting this account."""
        resolved = select(transfers.c.pending_id).where(transfers.c.pending_id.is_not(None))
        rows = (
            await self.session.execute(
                select(transfers).where(
                    transfers.c.debit_account_id == account_id,
                    transfers.c.kind == TransferKind.PENDING.value,
                    transfers.c.id.not_in(resolved),
                )
            )
        ).all()
        return [_transfer(r) for r in rows]

    async def due_for_expiry(self, now: datetime, limit: int = 100) -> list[Transfer]:
        resolved = select(transfers.c.pending_id).where(transfers.c.pending_id.is_not(None))
        rows = (
            await self.session.execute(
                select(transfers)
                .where(
                    transfers.c.kind == TransferKind.PENDING.value,
                    transfers.c.expires_at <= now,
                    transfers.c.id.not_in(resolved),
                )
                .order_by(transfers.c.expires_at)
                .limit(limit)
            )
        ).all()
        return [_transfer(r) for r in rows]

    async def all_accounts(self) -> list[Account]:
        return [_account(r) for r in (await self.session.execute(select(accounts))).all()]

    async def count_resolutions(self, pending_id: uuid.UUID) -> int:
        value = await self.session.scalar(
            select(func.count()).select_from(transfers).where(transfers.c.pending_id == pending_id)
        )
        return int(value or 0)


def _same_or_refuse(existing: Transfer, request: TransferRequest) -> Transfer:
    if existing.matches(request):
        return existing
    raise LedgerRefusal("exists_with_different_fields", "that transfer id names another transfer")


# --- drivers, cards, sessions, receipts -----------------------------------------------------


@dataclass(frozen=True)
class BillingProfile:
    user_id: uuid.UUID
    prefers_card: bool
    processor_customer_id: str | None
    auto_topup_enabled: bool
    auto_topup_threshold: int
    auto_topup_amount: int
    auto_topup_currency: str
    auto_topup_payment_method_id: uuid.UUID | None


@dataclass(frozen=True)
class PaymentMethod:
    id: uuid.UUID
    user_id: uuid.UUID
    processor_token: str
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None
    is_default: bool

    @property
    def label(self) -> str:
        return f"{self.brand} •••• {self.last4}"


def _profile(row: Row[Any]) -> BillingProfile:
    return BillingProfile(
        user_id=row.user_id,
        prefers_card=row.prefers_card,
        processor_customer_id=row.processor_customer_id,
        auto_topup_enabled=row.auto_topup_enabled,
        auto_topup_threshold=row.auto_topup_threshold,
        auto_topup_amount=row.auto_topup_amount,
        auto_topup_currency=row.auto_topup_currency,
        auto_topup_payment_method_id=row.auto_topup_payment_method_id,
    )


def _method(row: Row[Any]) -> PaymentMethod:
    return PaymentMethod(
        id=row.id,
        user_id=row.user_id,
        processor_token=row.processor_token,
        brand=row.brand,
        last4=row.last4,
        exp_month=row.exp_month,
        exp_year=row.exp_year,
        is_default=row.is_default,
    )


class BillingRepository:
    """Everything besides the ledger."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # profiles
    async def ensure_profile(self, user_id: uuid.UUID) -> BillingProfile:
        await self.session.execute(
            pg_insert(billing_accounts).values(user_id=user_id).on_conflict_do_nothing()
        )
        row = (
            await self.session.execute(
                select(billing_accounts).where(billing_accounts.c.user_id == user_id)
            )
        ).one()
        return _profile(row)

    async def ensure_profile_readonly(self, user_id: uuid.UUID) -> BillingProfile | None:
        """The profile if it exists (for read-only sessions)."""
        row = (
            await self.session.execute(
                select(billing_accounts).where(billing_accounts.c.user_id == user_id)
            )
        ).first()
        return _profile(row) if row else None

    async def lock_profile(self, user_id: uuid.UUID) -> BillingProfile:
        """Serialises a driver's money-moving work (auto top-up decisions) on one row."""
        await self.ensure_profile(user_id)
        row = (
            await self.session.execute(
                select(billing_accounts)
                .where(billing_accounts.c.user_id == user_id)
                .with_for_update()
            )
        ).one()
        return _profile(row)

    async def update_profile(self, user_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            update(billing_accounts)
            .where(billing_accounts.c.user_id == user_id)
            .values(**values, updated_at=func.now())
        )

    async def mark_verified(self, user_id: uuid.UUID) -> None:
        await self.ensure_profile(user_id)
        await self.update_profile(user_id, verified=True)

    # payment methods
    async def add_method(self, method: PaymentMethod) -> None:
        await self.session.execute(
            pg_insert(payment_methods)
            .values(
                id=method.id,
                user_id=method.user_id,
                processor_token=method.processor_token,
                brand=method.brand,
                last4=method.last4,
                exp_month=method.exp_month,
                exp_year=method.exp_year,
                is_default=method.is_default,
            )
            .on_conflict_do_nothing()
        )

    async def methods(self, user_id: uuid.UUID) -> list[PaymentMethod]:
        rows = (
            await self.session.execute(
                select(payment_methods)
                .where(payment_methods.c.user_id == user_id, payment_methods.c.removed_at.is_(None))
                .order_by(payment_methods.c.created_at, payment_methods.c.id)
            )
        ).all()
        return [_method(r) for r in rows]

    async def method(self, user_id: uuid.UUID, method_id: uuid.UUID) -> PaymentMethod | None:
        row = (
            await self.session.execute(
                select(payment_methods).where(
                    payment_methods.c.id == method_id,
                    payment_methods.c.user_id == user_id,
                    payment_methods.c.removed_at.is_(None),
                )
            )
        ).first()
        return _method(row) if row else None

    async def default_method(self, user_id: uuid.UUID) -> PaymentMethod | None:
        row = (
            await self.session.execute(
                select(payment_methods).where(
                    payment_methods.c.user_id == user_id,
                    payment_methods.c.removed_at.is_(None),
                    payment_methods.c.is_default,
                )
            )
        ).first()
        return _method(row) if row else None

    async def set_default(self, user_id: uuid.UUID, method_id: uuid.UUID) -> None:
        await self.session.execute(
            update(payment_methods)
            .where(payment_methods.c.user_id == user_id, payment_methods.c.is_default)
            .values(is_default=False)
        )
        await self.session.execute(
            update(payment_methods)
            .where(payment_methods.c.user_id == user_id, payment_methods.c.id == method_id)
            .values(is_default=True)
        )

    async def remove_method(self, user_id: uuid.UUID, method_id: uuid.UUID) -> None:
        await self.session.execute(
            update(payment_methods)
            .where(payment_methods.c.user_id == user_id, payment_methods.c.id == method_id)
            .values(removed_at=func.now(), is_default=False)
        )

    # sessions
    async def session_row(self, session_id: uuid.UUID, *, lock: bool = False) -> Row[Any] | None:
        query = select(billing_sessions).where(billing_sessions.c.session_id == session_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.execute(query)).first()

    async def insert_session(self, **values: Any) -> bool:
        """Insert once; False when this session is already known (a replayed event)."""
        result = await self.session.execute(
            pg_insert(billing_sessions)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(billing_sessions.c.session_id)
        )
        return result.first() is not None

    async def update_session(self, session_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            update(billing_sessions)
            .where(billing_sessions.c.session_id == session_id)
            .values(**values, updated_at=func.now())
        )

    # receipts, refunds, top-ups
    async def insert_receipt(self, **values: Any) -> None:
        await self.session.execute(insert(receipts).values(**values))

    async def receipt(self, session_id: uuid.UUID) -> Row[Any] | None:
        return (
            await self.session.execute(select(receipts).where(receipts.c.session_id == session_id))
        ).first()

    async def refunded(self, session_id: uuid.UUID) -> int:
        value = await self.session.scalar(
            select(func.coalesce(func.sum(refunds.c.amount), 0)).where(
                refunds.c.session_id == session_id
            )
        )
        return int(value or 0)

    async def insert_refund(self, **values: Any) -> None:
        await self.session.execute(insert(refunds).values(**values))

    async def insert_topup(self, **values: Any) -> None:
        await self.session.execute(pg_insert(topups).values(**values).on_conflict_do_nothing())

    async def topup(self, topup_id: uuid.UUID) -> Row[Any] | None:
        return (await self.session.execute(select(topups).where(topups.c.id == topup_id))).first()

    async def revenue(
        self, organisation_id: uuid.UUID, start: datetime, end: datetime
    ) -> Sequence[Row[Any]]:
        """Per station and currency: sessions, energy, excl. VAT, VAT, incl. VAT, refunds."""
        refunded = (
            select(
                refunds.c.station_id,
                refunds.c.currency,
                func.sum(refunds.c.amount).label("refunded"),
            )
            .where(
                refunds.c.organisation_id == organisation_id,
                refunds.c.created_at >= start,
                refunds.c.created_at < end,
            )
            .group_by(refunds.c.station_id, refunds.c.currency)
            .subquery()
        )
        billed = (
            select(
                receipts.c.station_id,
                receipts.c.currency,
                func.count().label("sessions"),
                func.sum(receipts.c.energy_wh).label("energy_wh"),
                func.sum(receipts.c.total_excl_vat).label("excl_vat"),
                func.sum(receipts.c.total_vat).label("vat"),
                func.sum(receipts.c.total_incl_vat).label("incl_vat"),
                func.sum(receipts.c.debt).label("debt"),
            )
            .where(
                receipts.c.organisation_id == organisation_id,
                receipts.c.issued_at >= start,
                receipts.c.issued_at < end,
            )
            .group_by(receipts.c.station_id, receipts.c.currency)
            .subquery()
        )
        query = (
            select(billed, func.coalesce(refunded.c.refunded, 0).label("refunded"))
            .select_from(
                billed.outerjoin(
                    refunded,
                    and_(
                        refunded.c.station_id == billed.c.station_id,
                        refunded.c.currency == billed.c.currency,
                    ),
                )
            )
            .order_by(billed.c.station_id)
        )
        return (await self.session.execute(query)).all()

    # API idempotency
    async def claim_idempotency_key(
        self, principal_id: uuid.UUID, key: str, request_hash: str
    ) -> Row[Any] | None:
        """None when this key is new (now claimed); else the stored row (waits for a
        concurrent first request to finish, thanks to the primary key)."""
        result = await self.session.execute(
            pg_insert(idempotency_keys)
            .values(principal_id=principal_id, key=key, request_hash=request_hash)
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        if result.first() is not None:
            return None
        return (
            await self.session.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.principal_id == principal_id, idempotency_keys.c.key == key
                )
            )
        ).one()

    async def store_idempotent_response(
        self, principal_id: uuid.UUID, key: str, status_code: int, body: Any
    ) -> None:
        await self.session.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.principal_id == principal_id, idempotency_keys.c.key == key)
            .values(status_code=status_code, response=body)
        )

    async def record_processor_event(self, event_id: str, type_: str, payload: Any) -> bool:
        """False when this webhook event was already received (processors redeliver)."""
        result = await self.session.execute(
            pg_insert(processor_events)
            .values(event_id=event_id, type=type_, payload=payload)
            .on_conflict_do_nothing()
            .returning(processor_events.c.event_id)
        )
        return result.first() is not None

    async def session_by_intent(self, intent_id: str) -> Row[Any] | None:
        return (
            await self.session.execute(
                select(billing_sessions).where(billing_sessions.c.payment_intent_id == intent_id)
            )
        ).first()
