"""Top up: charge a saved card and credit the wallet, by hand or automatically.

``begin`` checks every bound and records the top-up (``pending``) and its processor call;
after the commit the caller makes the call (``common.make_call``) and ``finish`` posts the
outcome. The processor is never called with a transaction open, and a top-up left pending by a
crash is finished by the sweeper with the same idempotency key (``topup:<id>``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from plugpay_events.contracts.billing import AutoTopUpConfigured, TopUpFailed, WalletToppedUp
from plugpay_events.envelope import Event
from plugpay_events.outbox import Outbox
from plugpay_events.types import Money
from plugpay_platform.errors import Refusal
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import (
    AccountKind,
    TransferRequest,
    auto_topup_amount,
    derived_id,
    needs_auto_topup,
    topup_problem,
)
from billing_svc.repository import BillingRepository, LedgerRepository, PaymentMethod
from billing_svc.tables import outbox_tables
from billing_svc.usecases.common import (
    Billing,
    ProcessorCall,
    UnitOfWork,
    make_call,
    processor_customer,
    record_call,
    refuse_after_declines,
    repay_debt,
    wallet,
    wrap_all,
)

_outbox = Outbox(outbox_tables)


@dataclass(frozen=True)
class TopUpResult:
    topup_id: uuid.UUID
    status: str  # pending | succeeded | failed
    amount: int
    currency: str
    balance_after: int
    failure_reason: str | None = None


async def begin(
    billing: Billing,
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    topup_id: uuid.UUID,
    amount: int,
    currency: str,
    method: PaymentMethod,
    trigger: str,
    client_address: str | None = None,
) -> ProcessorCall | None:
    """Check and record a top-up; the processor call to make, or None when it is done (a
    replay). Every refusal comes before the processor is called."""
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    profile = await repo.lock_profile(user_id)
    _, balance, _ = await wallet(ledger, user_id, currency)
    done = await repo.topup(topup_id)
    if done is not None:
        op = await repo.operation(f"topup:{topup_id}")
        return ProcessorCall.of(op) if done.status == "pending" and op is not None else None
    in_flight = await repo.topped_up_pending(user_id, currency)
    problem = topup_problem(
        amount, balance + in_flight, billing.policy.money_limits(currency), auto=trigger == "auto"
    )
    if problem is not None:
        raise Refusal(*problem, status_code=422)
    await refuse_after_declines(billing, repo, user_id, client_address)
    # A card saved without a processor customer (demo data, an older row) gets one here,
    # idempotently keyed, under the driver's own profile lock only (no ledger lock is held).
    customer = await processor_customer(billing, repo, profile)
    await repo.insert_topup(
        id=topup_id,
        user_id=user_id,
        amount=amount,
        currency=currency,
        trigger=trigger,
        status="pending",
        payment_method_id=method.id,
    )
    return await record_call(
        repo,
        f"topup:{topup_id}",
        "charge",
        topup_id,
        customer=customer,
        token=method.processor_token,
        amount=amount,
        currency=currency,
        metadata={"user_id": str(user_id), "topup_id": str(topup_id)},
        client_address=client_address,
    )


async def finish(
    billing: Billing, session: AsyncSession, topup_id: uuid.UUID
) -> tuple[TopUpResult, list[Event]]:
    """Post a top-up's processor outcome: the wallet credited (and old debt paid), or the
    decline recorded. A top-up already finished is answered as it was."""
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    row = await repo.topup(topup_id)
    assert row is not None
    user_id, currency, amount = row.user_id, row.currency, row.amount
    await repo.lock_profile(user_id)
    row = await repo.topup(topup_id)
    assert row is not None
    op = await repo.operation(f"topup:{topup_id}")
    wallet_id, balance, _ = await wallet(ledger, user_id, currency)
    if row.status != "pending" or op is None or op.status == "pending":
        return TopUpResult(topup_id, row.status, amount, currency, balance, row.failure_reason), []
    now = billing.clock()
    money = Money(amount_minor=amount, currency=currency)
    if op.status == "failed":
        code = op.outcome["code"]
        await repo.update_topup(topup_id, status="failed", failure_reason=code[:60])
        if op.outcome.get("declined"):
            await repo.record_decline(user_id, op.params.get("client_address"), code[:60], now)
        return TopUpResult(topup_id, "failed", amount, currency, balance, code), [
            TopUpFailed(
                user_id=user_id,
                topup_id=topup_id,
                amount=money,
                trigger=row.trigger,
                reason=code,
                failed_at=now,
            )
        ]
    intent_id = op.outcome["intent_id"]
    clearing = await ledger.open(AccountKind.PROCESSOR_CLEARING, currency, user_id)
    await ledger.create_transfer(
        TransferRequest.single(
            derived_id("topup", topup_id), "topup", clearing, wallet_id, amount, currency, intent_id
        ),
        now,
    )
    await repo.update_topup(topup_id, status="succeeded", payment_intent_id=intent_id)
    await repay_debt(ledger, user_id, currency, topup_id, now)
    _, balance, _ = await wallet(ledger, user_id, currency)
    return TopUpResult(topup_id, "succeeded", amount, currency, balance), [
        WalletToppedUp(
            user_id=user_id,
            topup_id=topup_id,
            amount=money,
            trigger=row.trigger,
            balance_after=Money(amount_minor=balance, currency=currency),
            topped_up_at=now,
        )
    ]


async def finish_in(
    billing: Billing, unit: UnitOfWork, topup_id: uuid.UUID, correlation_id: uuid.UUID | None = None
) -> TopUpResult:
    async with unit() as session:
        result, events = await finish(billing, session, topup_id)
        await _outbox.add(session, wrap_all(events, correlation_id=correlation_id))
    return result


async def auto_top_up(
    billing: Billing,
    unit: UnitOfWork,
    user_id: uuid.UUID,
    currency: str,
    cause: str,
    correlation_id: uuid.UUID | None = None,
) -> TopUpResult | None:
    """Top up when enabled and the free balance is under the threshold (patent FIG. 3), within
    the bounds. Keyed by its cause, so a replayed cause never charges twice."""
    topup_id = _auto_topup_id(cause)
    async with unit() as session:
        call = await _begin_auto(billing, session, user_id, currency, topup_id)
    if call is None:
        async with unit() as session:
            row = await BillingRepository(session).topup(topup_id)
        if row is None or row.status != "pending":
            return None
    else:
        await make_call(billing, unit, call)
    return await finish_in(billing, unit, topup_id, correlation_id)


async def auto_top_up_may_act(
    repo: BillingRepository, user_id: uuid.UUID, currency: str, cause: str
) -> bool:
    """Whether ``auto_top_up`` for ``cause`` could do anything: the driver tops up
    automatically in this currency, or a top-up for this cause is journalled (to finish).
    Read without the profile lock, so most drivers cost no locking transaction."""
    if await repo.topup(_auto_topup_id(cause)) is not None:
        return True
    profile = await repo.ensure_profile_readonly(user_id)
    return (
        profile is not None
        and profile.auto_topup_enabled
        and profile.auto_topup_currency == currency
    )


def _auto_topup_id(cause: str) -> uuid.UUID:
    return derived_id("auto-topup", cause)


async def _begin_auto(
    billing: Billing, session: AsyncSession, user_id: uuid.UUID, currency: str, topup_id: uuid.UUID
) -> ProcessorCall | None:
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    profile = await repo.lock_profile(user_id)
    if await repo.topup(topup_id) is not None:
        op = await repo.operation(f"topup:{topup_id}")
        return ProcessorCall.of(op) if op is not None and op.status == "pending" else None
    if profile.auto_topup_currency != currency:
        return None
    _, balance, available = await wallet(ledger, user_id, currency)
    if not needs_auto_topup(
        enabled=profile.auto_topup_enabled,
        available=available,
        threshold=profile.auto_topup_threshold,
    ):
        return None
    method = None
    if profile.auto_topup_payment_method_id:
        method = await repo.method(user_id, profile.auto_topup_payment_method_id)
    method = method or await repo.default_method(user_id)
    in_flight = await repo.topped_up_pending(user_id, currency)
    amount = auto_topup_amount(
        profile.auto_topup_amount, balance + in_flight, billing.policy.money_limits(currency)
    )
    if method is None or amount <= 0:
        return None
    try:
        return await begin(
            billing,
            session,
            user_id=user_id,
            topup_id=topup_id,
            amount=amount,
            currency=currency,
            method=method,
            trigger="auto",
        )
    except Refusal:
        return None  # after repeated declines: no more attempts until the window passes


async def configure_auto_topup(
    billing: Billing,
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    enabled: bool,
    threshold: Money,
    amount: Money,
    method_id: uuid.UUID | None,
) -> list[Event]:
    repo = BillingRepository(session)
    await repo.lock_profile(user_id)
    if threshold.currency != amount.currency:
        raise Refusal(
            "currency_mismatch", "threshold and amount must share a currency", status_code=422
        )
    if (
        threshold.amount_minor < 0
        or amount.amount_minor < 0
        or (enabled and amount.amount_minor == 0)
    ):
        raise Refusal("invalid_amount", "amounts must be positive", status_code=422)
    limits = billing.policy.money_limits(amount.currency)
    if enabled and amount.amount_minor < limits.min_topup:
        raise Refusal(
            "amount_below_minimum",
            f"an auto top-up is at least {limits.min_topup} minor units",
            status_code=422,
        )
    if amount.amount_minor > limits.max_auto_topup:
        raise Refusal(
            "amount_above_maximum",
            f"an auto top-up is at most {limits.max_auto_topup} minor units",
            status_code=422,
        )
    if threshold.amount_minor > limits.max_wallet_balance:
        raise Refusal(
            "threshold_above_maximum",
            f"a wallet holds at most {limits.max_wallet_balance} minor units",
            status_code=422,
        )
    if method_id is not None and await repo.method(user_id, method_id) is None:
        raise Refusal("not_found", "no such payment method", status_code=404)
    if enabled and method_id is None and await repo.default_method(user_id) is None:
        raise Refusal("no_payment_method", "auto top-up needs a saved card", status_code=409)
    await repo.update_profile(
        user_id,
        auto_topup_enabled=enabled,
        auto_topup_threshold=threshold.amount_minor,
        auto_topup_amount=amount.amount_minor,
        auto_topup_currency=amount.currency,
        auto_topup_payment_method_id=method_id,
    )
    return [
        AutoTopUpConfigured(
            user_id=user_id,
            enabled=enabled,
            threshold=threshold,
            amount=amount,
            payment_method_id=method_id,
            configured_at=billing.clock(),
        )
    ]
