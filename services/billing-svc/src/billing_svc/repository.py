"""The only module with SQL: the ledger store and billing-svc's other tables.

Locking: a batch of transfers (``create_transfers``; ``create_transfer`` is a batch of one)
locks every account it may touch in one statement ``ORDER BY id`` (one global order, so two
batches on the same accounts never deadlock), then reads the transfers it names, lets
``domain.plan_transfers`` decide each request as if one by one, and writes all new transfers,
balances and history entries in one statement. A unit of work that makes several transfers may
lock all its accounts up front with ``lock_accounts``. Nothing here commits: the caller's unit of
work does, once.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugpay_events.types import utc_now
from plugpay_platform.rows import column_values, record_from_row
from sqlalchemy import (
    ARRAY,
    Executable,
    Row,
    Table,
    and_,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.checkout_tables import guest_checkouts
from billing_svc.domain import (
    Account,
    AccountKind,
    BalanceRule,
    BatchPlan,
    DocumentSeries,
    Entry,
    LedgerRefusal,
    LegalProfile,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferResult,
    plan_transfers,
)
from billing_svc.tables import (
    accounts,
    billing_accounts,
    billing_sessions,
    cost_overruns,
    document_counters,
    idempotency_keys,
    ledger_entries,
    legal_profiles,
    payment_declines,
    payment_methods,
    processor_events,
    processor_operations,
    receipts,
    refunds,
    session_reviews,
    stations,
    topups,
    transfers,
)


def _account(row: Row[Any]) -> Account:
    return record_from_row(Account, row, kind=AccountKind(row.kind), rule=BalanceRule(row.rule))


def _transfer(row: Row[Any]) -> Transfer:
    return record_from_row(Transfer, row, kind=TransferKind(row.kind))


# $1 the accounts named by the requests, $2 the pending transfers named (their accounts too).
# Rows are locked as the sorted rows come out: in id order, the one global order.
_LOCK_ACCOUNTS = """
SELECT id, code, kind, currency, rule, owner_id, debits_pending, debits_posted,
    credits_pending, credits_posted, entries
FROM accounts
WHERE id = ANY($1::uuid[] || ARRAY(
    SELECT debit_account_id FROM transfers WHERE id = ANY($2::uuid[])
    UNION SELECT credit_account_id FROM transfers WHERE id = ANY($2::uuid[])))
ORDER BY id
FOR NO KEY UPDATE OF accounts
"""
# $1 the batch's ids and the pending ids it names, $2 the pending ids (their resolutions).
_READ_TRANSFERS = """
SELECT id, kind, debit_account_id, credit_account_id, amount, currency, code, pending_id,
    expires_at, reference, created_at
FROM transfers WHERE id = ANY($1::uuid[])
UNION ALL
SELECT id, kind, debit_account_id, credit_account_id, amount, currency, code, pending_id,
    expires_at, reference, created_at
FROM transfers WHERE pending_id = ANY($2::uuid[])
"""
# One statement: the transfers, then the balances, then the entries (foreign keys are checked
# at its end, so a post may name a hold of the same batch). CHECKs stay the backstop.
_WRITE = """
WITH new_transfers AS (
    INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount, currency,
        code, pending_id, expires_at, reference, created_at)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::bigint[],
        $6::text[], $7::text[], $8::uuid[], $9::timestamptz[], $10::text[], $11::timestamptz[])
), balances AS (
    UPDATE accounts AS a
    SET debits_pending = b.debits_pending, debits_posted = b.debits_posted,
        credits_pending = b.credits_pending, credits_posted = b.credits_posted,
        entries = b.entries
    FROM unnest($12::uuid[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[],
        $17::bigint[]) AS b(id, debits_pending, debits_posted, credits_pending, credits_posted,
        entries)
    WHERE a.id = b.id
)
INSERT INTO ledger_entries (account_id, seq, transfer_id, code, posted_delta, held_delta,
    balance_after, held_after, reference, created_at)
SELECT * FROM unnest($18::uuid[], $19::bigint[], $20::uuid[], $21::text[], $22::bigint[],
    $23::bigint[], $24::bigint[], $25::bigint[], $26::text[], $27::timestamptz[])
"""


def _write_arguments(plan: BatchPlan) -> list[list[Any]]:
    """``_WRITE``'s arguments: one array per column."""
    ts, accs, es = plan.transfers, plan.accounts, plan.entries
    return [
        [t.id for t in ts],
        [t.kind.value for t in ts],
        [t.debit_account_id for t in ts],
        [t.credit_account_id for t in ts],
        [t.amount for t in ts],
        [t.currency for t in ts],
        [t.code for t in ts],
        [t.pending_id for t in ts],
        [t.expires_at for t in ts],
        [t.reference for t in ts],
        [t.created_at for t in ts],
        [a.id for a in accs],
        [a.debits_pending for a in accs],
        [a.debits_posted for a in accs],
        [a.credits_pending for a in accs],
        [a.credits_posted for a in accs],
        [a.entries for a in accs],
        [e.account_id for e in es],
        [e.seq for e in es],
        [e.transfer_id for e in es],
        [e.code for e in es],
        [e.posted_delta for e in es],
        [e.held_delta for e in es],
        [e.balance_after for e in es],
        [e.held_after for e in es],
        [e.reference for e in es],
        [e.created_at for e in es],
    ]


def _stored_transfer(r: Any) -> Transfer:
    """A ``_READ_TRANSFERS`` record (asyncpg's, by position)."""
    return Transfer(
        id=r[0],
        kind=TransferKind(r[1]),
        debit_account_id=r[2],
        credit_account_id=r[3],
        amount=r[4],
        currency=r[5],
        code=r[6],
        created_at=r[10],
        pending_id=r[7],
        expires_at=r[8],
        reference=r[9],
    )


# Statements run for every charging session are built once: building a statement and its
# cache key costs more CPU than running it (docs/performance.md).
_OPEN_ACCOUNTS = text("""
INSERT INTO accounts (id, code, kind, currency, rule, owner_id)
SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:codes AS text[]), CAST(:kinds AS text[]),
    CAST(:currencies AS text[]), CAST(:rules AS text[]), CAST(:owner_ids AS uuid[]))
    AS opened(id, code, kind, currency, rule, owner_id)
ORDER BY id
ON CONFLICT (id) DO NOTHING
""")
_SELECT_ACCOUNT = select(accounts).where(accounts.c.id == bindparam("id"))
_LOCK_ACCOUNTS_BY_ID = (
    select(accounts)
    .where(accounts.c.id == any_(bindparam("ids", type_=ARRAY(accounts.c.id.type))))
    .order_by(accounts.c.id)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE: FK checks need not wait
)
_SELECT_TRANSFER = select(transfers).where(transfers.c.id == bindparam("id"))
_SELECT_RESOLUTION = select(transfers).where(transfers.c.pending_id == bindparam("pending_id"))

_SELECT_PROFILE = select(billing_accounts).where(billing_accounts.c.user_id == bindparam("user_id"))
_SELECT_PROFILE_FOR_UPDATE = _SELECT_PROFILE.with_for_update()
_INSERT_PROFILE = (
    pg_insert(billing_accounts).values(user_id=bindparam("user_id")).on_conflict_do_nothing()
)
_SELECT_EMAIL = select(billing_accounts.c.email).where(
    billing_accounts.c.user_id == bindparam("user_id")
)
_SELECT_METHOD = select(payment_methods).where(
    payment_methods.c.id == bindparam("id"),
    payment_methods.c.user_id == bindparam("user_id"),
    payment_methods.c.removed_at.is_(None),
)
_SELECT_DEFAULT_METHOD = select(payment_methods).where(
    payment_methods.c.user_id == bindparam("user_id"),
    payment_methods.c.removed_at.is_(None),
    payment_methods.c.is_default,
)
_SELECT_SESSION = select(billing_sessions).where(
    billing_sessions.c.session_id == bindparam("session_id")
)
_SELECT_SESSION_FOR_UPDATE = _SELECT_SESSION.with_for_update()
_SELECT_RECEIPT = select(receipts).where(receipts.c.session_id == bindparam("session_id"))
_SELECT_RECEIPT_FOR_UPDATE = _SELECT_RECEIPT.with_for_update()
_SELECT_TOPUP = select(topups).where(topups.c.id == bindparam("id"))
_INSERT_OPERATION = pg_insert(processor_operations).on_conflict_do_nothing()
_SELECT_OPERATION = select(processor_operations).where(
    processor_operations.c.key == bindparam("key")
)
_FINISH_OPERATION = (
    update(processor_operations)
    .where(
        processor_operations.c.key == bindparam("b_key"),
        processor_operations.c.status == "pending",
    )
    .values(status=bindparam("status"), outcome=bindparam("outcome"), updated_at=func.now())
)
_SELECT_PENDING_OPERATIONS_OF = select(processor_operations).where(
    processor_operations.c.reference == bindparam("reference"),
    processor_operations.c.status == "pending",
)
_NEXT_DOCUMENT_NUMBER = (
    pg_insert(document_counters)
    .values(
        organisation_id=bindparam("organisation_id"),
        series=bindparam("series"),
        year=bindparam("year"),
        last_number=1,
    )
    .on_conflict_do_update(
        index_elements=["organisation_id", "series", "year"],
        set_={"last_number": document_counters.c.last_number + 1},
    )
    .returning(document_counters.c.last_number)
)
_SELECT_LEGAL_PROFILE = select(legal_profiles).where(
    legal_profiles.c.organisation_id == bindparam("organisation_id")
)
_SELECT_STATION = select(stations).where(stations.c.station_id == bindparam("station_id"))
_SELECT_GUEST_CHECKOUT = select(guest_checkouts).where(
    guest_checkouts.c.user_id == bindparam("user_id")
)
_SELECT_GUEST_CHECKOUT_FOR_UPDATE = _SELECT_GUEST_CHECKOUT.with_for_update()


# Those writing the columns a caller names: one per set of names (names come from code only).
def _bound(names: frozenset[str]) -> dict[str, Any]:
    """Each named column's value as the bind parameter of the same name."""
    return {name: bindparam(name) for name in names}


@functools.cache
def _insert_session(names: frozenset[str]) -> Executable:
    return (
        pg_insert(billing_sessions)
        .values(_bound(names))
        .on_conflict_do_nothing()
        .returning(billing_sessions.c.session_id)
    )


@functools.cache
def _update_session(names: frozenset[str]) -> Executable:
    return (
        update(billing_sessions)
        .where(billing_sessions.c.session_id == bindparam("b_session_id"))
        .values({**_bound(names), "updated_at": func.now()})
    )


@functools.cache
def _insert_receipt(names: frozenset[str]) -> Executable:
    return insert(receipts).values(_bound(names))


@functools.cache
def _insert_cost_overrun(names: frozenset[str]) -> Executable:
    return pg_insert(cost_overruns).values(_bound(names)).on_conflict_do_nothing()


@functools.cache
def _insert_review(names: frozenset[str]) -> Executable:
    return pg_insert(session_reviews).values(_bound(names)).on_conflict_do_nothing()


@functools.cache
def _update_guest_checkout(names: frozenset[str]) -> Executable:
    return (
        update(guest_checkouts)
        .where(guest_checkouts.c.user_id == bindparam("b_user_id"))
        .values({**_bound(names), "updated_at": func.now()})
    )


class LedgerRepository:
    """Accounts and transfers in PostgreSQL, with the rules of ``domain``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open(
        self, kind: AccountKind, currency: str, owner: uuid.UUID | None = None
    ) -> uuid.UUID:
        """Create the account if it does not exist yet; returns its (derived) id."""
        (account_id,) = await self.open_all((kind, currency, owner))
        return account_id

    async def open_all(self, *wanted: tuple[AccountKind, str, uuid.UUID | None]) -> list[uuid.UUID]:
        """``open`` for several accounts in one statement; their ids in the order asked."""
        opened = [Account.open(kind, currency, owner) for kind, currency, owner in wanted]
        # In id order (the statement's ORDER BY), the one global order, like every lock here:
        # two use cases opening the same new accounts wait for each other instead of deadlocking.
        unique = {account.id: account for account in opened}.values()
        await self.session.execute(
            _OPEN_ACCOUNTS,
            {
                "ids": [account.id for account in unique],
                "codes": [account.code for account in unique],
                "kinds": [account.kind.value for account in unique],
                "currencies": [account.currency for account in unique],
                "rules": [account.rule.value for account in unique],
                "owner_ids": [account.owner_id for account in unique],
            },
        )
        return [account.id for account in opened]

    async def account(self, account_id: uuid.UUID) -> Account | None:
        row = (await self.session.execute(_SELECT_ACCOUNT, {"id": account_id})).first()
        return _account(row) if row else None

    async def lock_accounts(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Account]:
        """Lock rows in id order (the one global order) and return them as they are now."""
        wanted = sorted(set(ids))
        rows = (await self.session.execute(_LOCK_ACCOUNTS_BY_ID, {"ids": wanted})).all()
        return {row.id: _account(row) for row in rows}

    async def transfer(self, transfer_id: uuid.UUID) -> Transfer | None:
        row = (await self.session.execute(_SELECT_TRANSFER, {"id": transfer_id})).first()
        return _transfer(row) if row else None

    async def resolution_of(self, pending_id: uuid.UUID) -> Transfer | None:
        row = (await self.session.execute(_SELECT_RESOLUTION, {"pending_id": pending_id})).first()
        return _transfer(row) if row else None

    async def create_transfer(
        self, request: TransferRequest, now: datetime | None = None
    ) -> Transfer:
        """Create a transfer, or return the one with this id if it asked for the same thing;
        raises ``LedgerRefusal`` when the ledger says no. A batch of one."""
        (result,) = await self.create_transfers((request,), now)
        return result.unwrap()

    async def create_transfers(
        self, requests: Sequence[TransferRequest], now: datetime | None = None
    ) -> list[TransferResult]:
        """Create many transfers in the caller's transaction, in order, as if one by one.

        One result per request (created / exists / a refusal): a refused transfer changes
        nothing and does not fail the others. Three statements whatever the batch size: lock
        every account the batch may touch (in id order), read the transfers it names, write
        all new transfers, balances and entries at once. Decisions are ``plan_transfers``'s.
        """
        if not requests:
            return []
        now = now or utc_now()
        pending_ids = list({r.pending_id for r in requests if r.pending_id is not None})
        account_ids = list(
            {
                a
                for r in requests
                for a in (r.debit_account_id, r.credit_account_id)
                if a is not None
            }
        )
        conn = await self.session.connection()
        # Through SQLAlchemy first, so its transaction has begun before the driver is used.
        rows = (await conn.exec_driver_sql(_LOCK_ACCOUNTS, (account_ids, pending_ids))).all()
        locked = {row.id: _account(row) for row in rows}
        driver: Any = (await conn.get_raw_connection()).driver_connection
        # Read after the locks: whoever wrote these accounts before us has committed by now.
        rows = await driver.fetch(
            _READ_TRANSFERS, [r.id for r in requests] + pending_ids, pending_ids
        )
        stored = {row[0]: _stored_transfer(row) for row in rows}
        resolutions = {t.pending_id: t for t in stored.values() if t.pending_id is not None}
        # A pending transfer committed after the lock statement began may name accounts this
        # batch has not locked: for this batch it does not exist yet.
        pendings = {
            t.id: t
            for t in stored.values()
            if t.debit_account_id in locked and t.credit_account_id in locked
        }
        plan = plan_transfers(
            requests,
            locked,
            stored=stored,
            resolutions=resolutions,
            pendings=pendings,
            now=now,
        )
        if plan.transfers:
            await driver.execute(_WRITE, *_write_arguments(plan))
        return list(plan.results)

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
        return [record_from_row(Entry, r) for r in rows]

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
    verified: bool = False  # learned from UserVerified


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
    return record_from_row(BillingProfile, row)


def _method(row: Row[Any]) -> PaymentMethod:
    return record_from_row(PaymentMethod, row)


# Whose and where a session is: the columns a receipt, a refund, a review and a cost overrun
# copy from the session they are about.
SESSION_PARTIES = ("session_id", "user_id", "organisation_id", "station_id", "currency")


def _parties_of(row: Row[Any]) -> dict[str, Any]:
    """``SESSION_PARTIES`` as ``row`` (a billing session's, a receipt's) has them."""
    return {name: getattr(row, name) for name in SESSION_PARTIES}


class BillingRepository:
    """Everything besides the ledger."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # profiles
    async def _profile_row(self, user_id: uuid.UUID, *, lock: bool = False) -> Row[Any] | None:
        query = _SELECT_PROFILE_FOR_UPDATE if lock else _SELECT_PROFILE
        return (await self.session.execute(query, {"user_id": user_id})).first()

    async def ensure_profile(self, user_id: uuid.UUID) -> BillingProfile:
        await self.session.execute(_INSERT_PROFILE, {"user_id": user_id})
        row = await self._profile_row(user_id)
        assert row is not None  # inserted above, or there already
        return _profile(row)

    async def ensure_profile_readonly(self, user_id: uuid.UUID) -> BillingProfile | None:
        """The profile if it exists (for read-only sessions)."""
        row = await self._profile_row(user_id)
        return _profile(row) if row else None

    async def lock_profile(self, user_id: uuid.UUID) -> BillingProfile:
        """Serialises a driver's money-moving work (auto top-up decisions) on one row."""
        await self.ensure_profile(user_id)
        row = await self._profile_row(user_id, lock=True)
        assert row is not None  # ensured above
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
            .values(column_values(method, payment_methods))
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
            await self.session.execute(_SELECT_METHOD, {"id": method_id, "user_id": user_id})
        ).first()
        return _method(row) if row else None

    async def default_method(self, user_id: uuid.UUID) -> PaymentMethod | None:
        row = (await self.session.execute(_SELECT_DEFAULT_METHOD, {"user_id": user_id})).first()
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
        query = _SELECT_SESSION_FOR_UPDATE if lock else _SELECT_SESSION
        return (await self.session.execute(query, {"session_id": session_id})).first()

    async def insert_session(self, **values: Any) -> bool:
        """Insert once; False when this session is already known (a replayed event)."""
        result = await self.session.execute(_insert_session(frozenset(values)), values)
        return result.first() is not None

    async def update_session(self, session_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            _update_session(frozenset(values)), {**values, "b_session_id": session_id}
        )

    # receipts, refunds, top-ups
    async def insert_receipt(self, of: Row[Any], **values: Any) -> None:
        """The receipt of the billing session ``of``."""
        row = dict(**_parties_of(of), **values)
        await self.session.execute(_insert_receipt(frozenset(row)), row)

    async def update_receipt(self, session_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            update(receipts).where(receipts.c.session_id == session_id).values(**values)
        )

    async def receipt(self, session_id: uuid.UUID, *, lock: bool = False) -> Row[Any] | None:
        query = _SELECT_RECEIPT_FOR_UPDATE if lock else _SELECT_RECEIPT
        return (await self.session.execute(query, {"session_id": session_id})).first()

    async def refunded(self, session_id: uuid.UUID, *, with_pending: bool = False) -> int:
        """Refunded so far; ``with_pending`` adds refunds still at the processor (reserved)."""
        statuses = ("done", "pending") if with_pending else ("done",)
        value = await self.session.scalar(
            select(func.coalesce(func.sum(refunds.c.amount), 0)).where(
                refunds.c.session_id == session_id, refunds.c.status.in_(statuses)
            )
        )
        return int(value or 0)

    # the processor journal
    async def insert_operation(
        self, key: str, kind: str, reference: str, params: dict[str, Any]
    ) -> None:
        await self.session.execute(
            _INSERT_OPERATION, {"key": key, "kind": kind, "reference": reference, "params": params}
        )

    async def operation(self, key: str) -> Row[Any] | None:
        return (await self.session.execute(_SELECT_OPERATION, {"key": key})).first()

    async def finish_operation(self, key: str, status: str, outcome: dict[str, Any]) -> None:
        """Record a call's outcome; the first recorded outcome stays (a retry's is the same)."""
        await self.session.execute(
            _FINISH_OPERATION, {"b_key": key, "status": status, "outcome": outcome}
        )

    async def pending_operations_of(self, reference: str) -> list[Row[Any]]:
        rows = await self.session.execute(_SELECT_PENDING_OPERATIONS_OF, {"reference": reference})
        return list(rows.all())

    async def pending_operations(self, older_than: datetime, limit: int) -> list[Row[Any]]:
        rows = await self.session.execute(
            select(processor_operations)
            .where(
                processor_operations.c.status == "pending",
                processor_operations.c.updated_at < older_than,
            )
            .order_by(processor_operations.c.created_at)
            .limit(limit)
        )
        return list(rows.all())

    async def settling_sessions(self, older_than: datetime, limit: int) -> list[uuid.UUID]:
        rows = await self.session.scalars(
            select(billing_sessions.c.session_id)
            .where(
                billing_sessions.c.status == "settling",
                billing_sessions.c.updated_at < older_than,
            )
            .limit(limit)
        )
        return list(rows)

    async def pending_topups(self, older_than: datetime, limit: int) -> list[uuid.UUID]:
        return await self._pending_since(topups, older_than, limit)

    async def pending_refunds(self, older_than: datetime, limit: int) -> list[uuid.UUID]:
        return await self._pending_since(refunds, older_than, limit)

    async def _pending_since(
        self, table: Table, older_than: datetime, limit: int
    ) -> list[uuid.UUID]:
        """Ids of ``table``'s rows still pending at the processor, made before ``older_than``."""
        rows = await self.session.scalars(
            select(table.c.id)
            .where(table.c.status == "pending", table.c.created_at < older_than)
            .limit(limit)
        )
        return list(rows)

    async def topped_up_pending(self, user_id: uuid.UUID, currency: str) -> int:
        """Top-ups at the processor, not yet in the wallet (they count against its maximum)."""
        value = await self.session.scalar(
            select(func.coalesce(func.sum(topups.c.amount), 0)).where(
                topups.c.user_id == user_id,
                topups.c.currency == currency,
                topups.c.status == "pending",
            )
        )
        return int(value or 0)

    async def update_topup(self, topup_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(update(topups).where(topups.c.id == topup_id).values(**values))

    async def refunds_of(self, session_id: uuid.UUID) -> list[Row[Any]]:
        """A session's refunds, oldest first (failed ones too: the operator sees what happened)."""
        result = await self.session.execute(
            select(refunds)
            .where(refunds.c.session_id == session_id)
            .order_by(refunds.c.created_at, refunds.c.id)
        )
        return list(result.all())

    async def refund_row(self, refund_id: uuid.UUID) -> Row[Any] | None:
        return (
            await self.session.execute(select(refunds).where(refunds.c.id == refund_id))
        ).first()

    async def update_refund(self, refund_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            update(refunds).where(refunds.c.id == refund_id).values(**values)
        )

    async def done_refunds(self, session_id: uuid.UUID) -> list[Row[Any]]:
        query = (
            select(refunds)
            .where(refunds.c.session_id == session_id, refunds.c.status == "done")
            .order_by(refunds.c.created_at, refunds.c.id)
        )
        return list((await self.session.execute(query)).all())

    async def cards_with_expiry_unnoticed(self, limit: int) -> list[Row[Any]]:
        """Saved cards whose expiry the driver was not told yet, locked (others skip them)."""
        query = (
            select(payment_methods)
            .where(
                payment_methods.c.removed_at.is_(None),
                payment_methods.c.expiry_noticed_at.is_(None),
                payment_methods.c.exp_year.is_not(None),
                payment_methods.c.exp_month.is_not(None),
            )
            .order_by(payment_methods.c.exp_year, payment_methods.c.exp_month, payment_methods.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(query)).all())

    async def mark_expiry_noticed(self, method_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(payment_methods)
            .where(payment_methods.c.id == method_id)
            .values(expiry_noticed_at=at)
        )

    # --- invoices ---------------------------------------------------------------------------

    async def next_document_number(
        self, organisation_id: uuid.UUID, series: DocumentSeries, year: int
    ) -> int:
        """The next number of the series, its counter row locked until the caller's commit
        (a rollback gives the number back: no gaps, no duplicates)."""
        params = {"organisation_id": organisation_id, "series": series, "year": year}
        return int((await self.session.execute(_NEXT_DOCUMENT_NUMBER, params)).scalar_one())

    async def legal_profile(self, organisation_id: uuid.UUID) -> Row[Any] | None:
        params = {"organisation_id": organisation_id}
        return (await self.session.execute(_SELECT_LEGAL_PROFILE, params)).first()

    async def put_legal_profile(
        self,
        organisation_id: uuid.UUID,
        profile: LegalProfile,
        updated_by: uuid.UUID | None,
        now: datetime,
    ) -> None:
        values = {
            "legal_name": profile.legal_name,
            "address": profile.address,
            "vat_id": profile.vat_id,
            "invoice_prefix": profile.invoice_prefix,
            "updated_by": updated_by,
            "updated_at": now,
        }
        stmt = pg_insert(legal_profiles).values(organisation_id=organisation_id, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=["organisation_id"], set_=values)
        )

    async def learn_organisation(self, organisation_id: uuid.UUID, name: str) -> None:
        """A new organisation's invoices name it until its operators fill in the profile."""
        await self.session.execute(
            pg_insert(legal_profiles)
            .values(organisation_id=organisation_id, legal_name=name)
            .on_conflict_do_nothing()
        )

    async def learn_station(
        self, station_id: str, organisation_id: uuid.UUID, name: str, address: str | None
    ) -> None:
        values = {"organisation_id": organisation_id, "name": name, "address": address}
        stmt = pg_insert(stations).values(station_id=station_id, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=["station_id"], set_=values)
        )

    async def station(self, station_id: str) -> Row[Any] | None:
        return (await self.session.execute(_SELECT_STATION, {"station_id": station_id})).first()

    async def learn_email(self, user_id: uuid.UUID, email: str) -> None:
        await self.ensure_profile(user_id)
        await self.update_profile(user_id, email=email)

    async def email_of(self, user_id: uuid.UUID) -> str | None:
        return await self.session.scalar(_SELECT_EMAIL, {"user_id": user_id})

    async def insert_cost_overrun(self, of: Row[Any], **values: Any) -> None:
        """The cost overrun of the billing session ``of`` (a replay keeps the first)."""
        row = dict(**_parties_of(of), **values)
        await self.session.execute(_insert_cost_overrun(frozenset(row)), row)

    # sessions held for review
    async def insert_review(self, of: Row[Any], **values: Any) -> None:
        """The review of the billing session ``of`` (a replay keeps the first)."""
        row = dict(**_parties_of(of), **values)
        await self.session.execute(_insert_review(frozenset(row)), row)

    async def review(self, session_id: uuid.UUID, *, lock: bool = False) -> Row[Any] | None:
        query = select(session_reviews).where(session_reviews.c.session_id == session_id)
        return (await self.session.execute(query.with_for_update() if lock else query)).first()

    async def update_review(self, session_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            update(session_reviews)
            .where(session_reviews.c.session_id == session_id)
            .values(**values)
        )

    async def reviews(
        self,
        organisation_id: uuid.UUID | None,
        status: str | None,
        limit: int,
        *,
        session_id: uuid.UUID | None = None,
    ) -> Sequence[Row[Any]]:
        """Reviews (newest first) with what the plausible part billed (None: not billed yet)."""
        query = (
            select(
                session_reviews,
                receipts.c.total_incl_vat.label("billed_total"),
                func.coalesce(billing_sessions.c.max_cost, billing_sessions.c.hold_amount).label(
                    "authorised_max"
                ),
            )
            .select_from(
                session_reviews.outerjoin(
                    receipts, receipts.c.session_id == session_reviews.c.session_id
                ).join(
                    billing_sessions,
                    billing_sessions.c.session_id == session_reviews.c.session_id,
                )
            )
            .order_by(session_reviews.c.flagged_at.desc())
            .limit(limit)
        )
        if organisation_id is not None:
            query = query.where(session_reviews.c.organisation_id == organisation_id)
        if status is not None:
            query = query.where(session_reviews.c.status == status)
        if session_id is not None:
            query = query.where(session_reviews.c.session_id == session_id)
        return (await self.session.execute(query)).all()

    async def cost_overrun(self, session_id: uuid.UUID) -> Row[Any] | None:
        return (
            await self.session.execute(
                select(cost_overruns).where(cost_overruns.c.session_id == session_id)
            )
        ).first()

    # declined payments (card testing)
    async def record_decline(
        self, user_id: uuid.UUID, client_address: str | None, reason: str, at: datetime
    ) -> None:
        await self.session.execute(
            insert(payment_declines).values(
                id=uuid.uuid4(),
                user_id=user_id,
                client_address=client_address,
                reason=reason,
                created_at=at,
            )
        )

    async def recent_declines(
        self, user_id: uuid.UUID, client_address: str | None, since: datetime
    ) -> list[datetime]:
        """When the declines since ``since`` of this account, and of this address, happened
        (the larger of the two lists, oldest first)."""
        found: list[list[datetime]] = []
        for column, value in (
            (payment_declines.c.user_id, user_id),
            (payment_declines.c.client_address, client_address),
        ):
            if value is None:
                continue
            rows = await self.session.scalars(
                select(payment_declines.c.created_at)
                .where(column == value, payment_declines.c.created_at >= since)
                .order_by(payment_declines.c.created_at)
            )
            found.append(list(rows))
        return max(found, key=len, default=[])

    async def insert_refund(self, of: Row[Any], **values: Any) -> None:
        """A refund of the session whose receipt is ``of``."""
        await self.session.execute(insert(refunds).values(**_parties_of(of), **values))

    async def insert_topup(self, **values: Any) -> None:
        await self.session.execute(pg_insert(topups).values(**values).on_conflict_do_nothing())

    async def topup(self, topup_id: uuid.UUID) -> Row[Any] | None:
        return (await self.session.execute(_SELECT_TOPUP, {"id": topup_id})).first()

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
                refunds.c.status == "done",
                refunds.c.created_at >= start,
                refunds.c.created_at < end,
            )
            .group_by(refunds.c.station_id, refunds.c.currency)
            .subquery()
        )
        # A session held for review is pending until an operator decides: not revenue yet.
        pending = session_reviews.c.status == "pending"
        counted = session_reviews.c.status.is_distinct_from("pending")

        def revenue_sum(column: Any, label: str) -> Any:
            return func.coalesce(func.sum(column).filter(counted), 0).label(label)

        billed = (
            select(
                receipts.c.station_id,
                receipts.c.currency,
                func.count().filter(counted).label("sessions"),
                revenue_sum(receipts.c.energy_wh, "energy_wh"),
                revenue_sum(receipts.c.total_excl_vat, "excl_vat"),
                revenue_sum(receipts.c.total_vat, "vat"),
                revenue_sum(receipts.c.total_incl_vat, "incl_vat"),
                revenue_sum(receipts.c.debt, "debt"),
                func.count().filter(pending).label("pending_sessions"),
                func.coalesce(func.sum(receipts.c.total_incl_vat).filter(pending), 0).label(
                    "pending_incl_vat"
                ),
            )
            .select_from(
                receipts.outerjoin(
                    session_reviews, session_reviews.c.session_id == receipts.c.session_id
                )
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

    # guest checkouts (a card hold placed on-session before the scan)
    async def guest_checkout(
        self, user_id: uuid.UUID, *, lock: bool = False
    ) -> GuestCheckout | None:
        query = _SELECT_GUEST_CHECKOUT_FOR_UPDATE if lock else _SELECT_GUEST_CHECKOUT
        row = (await self.session.execute(query, {"user_id": user_id})).first()
        return record_from_row(GuestCheckout, row) if row is not None else None

    async def insert_guest_checkout(self, checkout: GuestCheckout) -> None:
        await self.session.execute(
            insert(guest_checkouts).values(**column_values(checkout, guest_checkouts))
        )

    async def update_guest_checkout(self, user_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            _update_guest_checkout(frozenset(values)), {**values, "b_user_id": user_id}
        )

    async def unused_guest_checkouts(self, placed_before: datetime, limit: int) -> list[uuid.UUID]:
        """Guests whose hold (or unfinished challenge) no session took up in time."""
        rows = await self.session.execute(
            select(guest_checkouts.c.user_id)
            .where(
                guest_checkouts.c.status.in_(("held", "requires_action")),
                guest_checkouts.c.created_at < placed_before,
            )
            .order_by(guest_checkouts.c.created_at)
            .limit(limit)
        )
        return list(rows.scalars())


@dataclass(frozen=True)
class GuestCheckout:
    """A guest's card hold placed on-session (``checkout_tables.guest_checkouts``)."""

    user_id: uuid.UUID
    payment_method_id: uuid.UUID
    intent_id: str | None
    amount: int
    currency: str
    status: str
    reason: str | None = None
    redirect_url: str | None = None
    expires_at: datetime | None = None
    session_id: uuid.UUID | None = None
