"""What billing's use cases share: their context, the driver's wallet, holds, and the journal of
processor calls made outside transactions.

Use cases take the caller's unit of work (an ``AsyncSession`` in a transaction) and never
commit. The few that must call the processor are split around the call: one function decides
and records the call (``ProcessorCall``, pending in ``processor_operations``), the caller commits,
``call_processor`` runs it with no transaction open, and another function posts its outcome.
Lock order, everywhere: the driver's ``billing_accounts`` row first, then account rows in id
order, organisation-wide accounts (revenue, VAT) last.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from plugpay_events.envelope import Envelope, Event
from plugpay_events.types import utc_now
from plugpay_platform.errors import Refusal
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import (
    AccountKind,
    HoldPolicy,
    MoneyLimits,
    Transfer,
    TransferKind,
    TransferRequest,
    derived_id,
)
from billing_svc.processor import CardPayment, PaymentDeclined, PaymentProcessor, ProcessorError
from billing_svc.repository import (
    BillingProfile,
    BillingRepository,
    LedgerRepository,
    PaymentMethod,
)

PRODUCER = "billing-svc"
DEFAULT_LIMITS = MoneyLimits(
    min_topup=100, max_topup=50_000, max_auto_topup=20_000, max_wallet_balance=50_000
)

# A unit of work: a session in a transaction that commits when the block ends.
UnitOfWork = Callable[[], AbstractAsyncContextManager[AsyncSession]]


@dataclass(frozen=True)
class BillingPolicy:
    """The knobs of authorisation and of the bounds on money (from settings)."""

    holds: HoldPolicy
    start_deadline: timedelta = timedelta(minutes=3)
    wallet_hold_ttl: timedelta = timedelta(days=2)
    money_limits: Callable[[str], MoneyLimits] = field(default=lambda _currency: DEFAULT_LIMITS)
    max_declines: int = 5
    decline_window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Billing:
    """What every use case needs besides its unit of work. One per app."""

    processor: PaymentProcessor
    policy: BillingPolicy
    clock: Callable[[], datetime] = utc_now


def wrap_all(
    events: Sequence[Event],
    caused_by: Envelope | None = None,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
) -> list[Envelope]:
    """Envelopes for the outbox (``causation_id``: when the causing envelope is not at hand,
    e.g. a settlement finished after its processor call)."""
    envelopes = [
        Envelope.wrap(e, producer=PRODUCER, caused_by=caused_by, correlation_id=correlation_id)
        for e in events
    ]
    if causation_id is not None:
        envelopes = [e.model_copy(update={"causation_id": causation_id}) for e in envelopes]
    return envelopes


async def wallet(
    ledger: LedgerRepository, user_id: uuid.UUID, currency: str
) -> tuple[uuid.UUID, int, int]:
    """(wallet id, balance, available), opening the wallet if needed."""
    wallet_id = await ledger.open(AccountKind.WALLET, currency, user_id)
    account = await ledger.account(wallet_id)
    assert account is not None
    return wallet_id, account.balance, account.available


async def end_hold(
    ledger: LedgerRepository, hold: Transfer, now: datetime, kind: TransferKind | None = None
) -> None:
    """Void a hold, or expire it when its time is up (a void after expiry is refused)."""
    if kind is None:
        expired = hold.expires_at is not None and now >= hold.expires_at
        kind = TransferKind.EXPIRE if expired else TransferKind.VOID
    await ledger.create_transfer(
        TransferRequest(
            id=derived_id(kind.value, hold.id),
            kind=kind,
            amount=0,
            currency=hold.currency,
            code="hold_expired" if kind is TransferKind.EXPIRE else "hold_released",
            pending_id=hold.id,
            reference=hold.reference,
        ),
        now,
    )


async def repay_debt(
    ledger: LedgerRepository, user_id: uuid.UUID, currency: str, cause: uuid.UUID, now: datetime
) -> None:
    """New money in the wallet first pays what the driver still owes from past sessions."""
    receivable = await ledger.account(await ledger.open(AccountKind.RECEIVABLE, currency, user_id))
    wallet_id, _, available = await wallet(ledger, user_id, currency)
    assert receivable is not None
    amount = min(available, receivable.balance)
    repayment = ("debt-repayment", "debt_repayment", wallet_id, receivable.id, amount)
    await post_moves(
        ledger, [repayment], cause=cause, currency=currency, reference=str(cause), now=now
    )


# One posted transfer of a booking: (key, code, debit account, credit account, amount).
Move = tuple[str, str, uuid.UUID, uuid.UUID, int]


async def post_moves(
    ledger: LedgerRepository,
    moves: Iterable[Move],
    *,
    cause: uuid.UUID,
    currency: str,
    reference: str,
    now: datetime,
) -> None:
    """Post each move that moves money; its id derives from its key and ``cause``, so a retry
    of the booking posts nothing twice."""
    for key, code, debit, credit, amount in moves:
        if amount > 0:
            await ledger.create_transfer(
                TransferRequest.single(
                    derived_id(key, cause), code, debit, credit, amount, currency, reference
                ),
                now,
            )


async def refuse_after_declines(
    billing: Billing, repo: BillingRepository, user_id: uuid.UUID, client_address: str | None
) -> None:
    """Card testing: after too many declines in the window, no more processor calls."""
    now = billing.clock()
    policy = billing.policy
    declines = await repo.recent_declines(user_id, client_address, now - policy.decline_window)
    if len(declines) < policy.max_declines:
        return
    frees_at = declines[-policy.max_declines] + policy.decline_window
    retry_after = max(math.ceil((frees_at - now).total_seconds()), 1)
    raise Refusal(
        "too_many_declines",
        "too many declined payments; try again later",
        status_code=429,
        headers={"Retry-After": str(retry_after)},
    )


def payment_label(
    *, wallet_part: int, card_part: int, card: PaymentMethod | None, free: bool = False
) -> str:
    """What paid, in plain words ("Wallet + Visa •••• 4242"): never "Wallet" for money that
    came from a card (the amounts are in the receipt's funding split)."""
    parts = []
    if wallet_part:
        parts.append("Wallet")
    if card_part:
        parts.append(card.label if card else "Card")
    if parts:
        return " + ".join(parts)[:60]
    return "Free" if free else "Nothing charged"


# --- processor calls outside transactions ----------------------------------------------------


@dataclass(frozen=True)
class ProcessorCall:
    """A processor call decided in a transaction and made after its commit; ``key`` is the
    processor's idempotency key, so making it again (a retry, a recovery) is safe."""

    key: str
    kind: str  # capture | cancel | charge | refund
    params: dict[str, Any]

    @classmethod
    def of(cls, row: Row[Any]) -> ProcessorCall:
        return cls(row.key, row.kind, dict(row.params))


async def record_call(
    repo: BillingRepository, key: str, kind: str, reference: object, **params: Any
) -> ProcessorCall:
    """Journal a call (pending) in the deciding transaction; an existing one is returned."""
    existing = await repo.operation(key)
    if existing is not None:
        return ProcessorCall.of(existing)
    await repo.insert_operation(key, kind, str(reference), params)
    return ProcessorCall(key, kind, params)


async def call_processor(
    processor: PaymentProcessor, call: ProcessorCall
) -> tuple[str, dict[str, Any]]:
    """Make the call (no transaction may be open): ("succeeded" | "failed", outcome). Anything
    but a processor's answer (a time-out, a crash) raises and leaves the call pending."""
    p = call.params
    try:
        if call.kind == "capture":
            amount = await processor.capture(p["intent_id"], p["amount"], idempotency_key=call.key)
            return "succeeded", {"amount": amount}
        if call.kind == "cancel":
            await processor.cancel(p["intent_id"], idempotency_key=call.key)
            return "succeeded", {}
        if call.kind == "charge":
            payment = CardPayment(
                p["customer"], p["token"], p["amount"], p["currency"], p.get("metadata") or {}
            )
            charge = await processor.charge(payment, idempotency_key=call.key)
            return "succeeded", {"intent_id": charge.intent_id, "amount": charge.amount}
        if call.kind == "refund":
            refund = await processor.refund(p["intent_id"], p["amount"], idempotency_key=call.key)
            return "succeeded", {"refund_id": refund}
    except PaymentDeclined as declined:
        return "failed", {"code": declined.code, "message": declined.message, "declined": True}
    except ProcessorError as error:
        return "failed", {"code": error.code, "message": error.message, "declined": False}
    raise ValueError(f"unknown processor call {call.kind!r}")


async def make_call(billing: Billing, unit: UnitOfWork, call: ProcessorCall) -> Row[Any]:
    """Call the processor outside any transaction, then record the outcome in a short one."""
    status, outcome = await call_processor(billing.processor, call)
    async with unit() as session:
        repo = BillingRepository(session)
        await repo.finish_operation(call.key, status, outcome)
        row = await repo.operation(call.key)
    assert row is not None
    return row


async def make_pending_calls(billing: Billing, unit: UnitOfWork, reference: object) -> None:
    """Make the calls a committed transaction recorded for ``reference`` (e.g. a cancel)."""
    async with unit() as session:
        rows = await BillingRepository(session).pending_operations_of(str(reference))
    for row in rows:
        await make_call(billing, unit, ProcessorCall.of(row))


async def pending_calls(
    unit: UnitOfWork, older_than: datetime, limit: int = 50
) -> AsyncIterator[ProcessorCall]:
    """Calls left pending by a crash or a time-out, to be made again with the same key."""
    async with unit() as session:
        rows = await BillingRepository(session).pending_operations(older_than, limit)
    for row in rows:
        yield ProcessorCall.of(row)


async def processor_customer(
    billing: Billing, repo: BillingRepository, profile: BillingProfile
) -> str:
    """The driver's customer at the processor, created once (idempotently keyed)."""
    if profile.processor_customer_id:
        return profile.processor_customer_id
    customer = await billing.processor.create_customer(
        profile.user_id, idempotency_key=f"customer:{profile.user_id}"
    )
    await repo.update_profile(profile.user_id, processor_customer_id=customer)
    return customer


def authorised_max(row: Any) -> int:
    """The most a billing session's driver agreed to before the start: its limits' max_cost
    (a wallet hold and the card beyond it), or the hold where none was recorded."""
    return int(row.max_cost) if row.max_cost is not None else int(row.hold_amount)
