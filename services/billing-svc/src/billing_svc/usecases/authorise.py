"""Authorise: hold funds for a priced session, and release holds that were not used."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plugpay_events.contracts.sessions import (
    SessionAuthorized,
    SessionDenied,
    SessionHoldReleased,
    SessionLimits,
    SessionPriced,
)
from plugpay_events.envelope import Event
from plugpay_events.types import Money
from plugpay_tariffs import purchasable_limits
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import (
    AccountKind,
    FundingChoice,
    Transfer,
    TransferKind,
    TransferRequest,
    choose_funding,
    decline_message,
    derived_id,
)
from billing_svc.processor import Authorization, CardPayment, PaymentDeclined, ProcessorError
from billing_svc.repository import BillingRepository, LedgerRepository
from billing_svc.usecases import checkout as guest_checkout
from billing_svc.usecases.common import (
    PRODUCER,
    Billing,
    ProcessorCall,
    end_hold,
    processor_customer,
    record_call,
)
from billing_svc.usecases.top_up import auto_top_up_may_act


@dataclass(frozen=True)
class AroundAuthorising:
    """The work outside the authorising transaction that a priced session may need."""

    auto_top_up_cause: str | None
    """Top up first (outside the transaction), under this cause; None: nothing to top up."""
    cancel_checkout_after: bool
    """A guest's checkout hold may be cancelled by it: make the journalled call after."""


NOTHING_AROUND = AroundAuthorising(None, cancel_checkout_after=False)
"""A free session: nothing is held, so nothing to top up first or cancel after."""


async def around_authorising(session: AsyncSession, priced: SessionPriced) -> AroundAuthorising:
    """Read once before authorising a paid session, so that the common case (no auto top-up,
    no guest checkout) costs no other transaction than the authorising one."""
    repo = BillingRepository(session)
    if await repo.session_row(priced.session_id) is not None:
        # Decided before (a redelivery): only the calls its commit journalled may be left.
        return AroundAuthorising(None, cancel_checkout_after=True)
    cause = f"authorize:{priced.session_id}"
    top_up_first = await auto_top_up_may_act(repo, priced.user_id, priced.tariff.currency, cause)
    return AroundAuthorising(
        cause if top_up_first else None,
        cancel_checkout_after=await repo.guest_checkout(priced.user_id) is not None,
    )


async def authorize(billing: Billing, session: AsyncSession, priced: SessionPriced) -> list[Event]:
    """Decide the funds for a priced session: a wallet hold or a card pre-authorisation.

    A due auto top-up runs before this (``top_up.auto_top_up``), outside this transaction. The
    card pre-authorisation is made here, under the driver's profile lock but no ledger lock."""
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    if await repo.session_row(priced.session_id) is not None:
        return []  # handled before (a replay with a new event id)
    profile = await repo.lock_profile(priced.user_id)
    now = billing.clock()
    tariff = priced.tariff
    currency = tariff.currency
    events: list[Event] = []
    base = {
        "session_id": priced.session_id,
        "user_id": priced.user_id,
        "station_id": priced.station_id,
        "connector_id": priced.connector_id,
        "organisation_id": priced.station_organisation_id,
        "currency": currency,
        "time_zone": priced.time_zone,
    }

    def limits_for(amount: int) -> tuple[bool, SessionLimits]:
        bought = purchasable_limits(tariff, amount, now, priced.time_zone, priced.max_power_w)
        return bought.affordable, SessionLimits(
            max_energy_wh=bought.max_energy_wh,
            max_duration_s=bought.max_duration_s,
            max_cost=Money(amount_minor=amount, currency=currency),
        )

    def deny(reason: str, message: str) -> list[Event]:
        return [
            *events,
            SessionDenied(
                session_id=priced.session_id,
                station_id=priced.station_id,
                connector_id=priced.connector_id,
                user_id=priced.user_id,
                reason=reason,
                message=message,
                denied_by=PRODUCER,
                denied_at=now,
            ),
        ]

    def authorized(
        funding: str, hold_id: uuid.UUID | None, amount: int, limits: SessionLimits
    ) -> list[Event]:
        return [
            *events,
            SessionAuthorized(
                session_id=priced.session_id,
                station_id=priced.station_id,
                connector_id=priced.connector_id,
                user_id=priced.user_id,
                funding=funding,
                hold_id=hold_id,
                hold_amount=Money(amount_minor=amount, currency=currency),
                limits=limits,
                authorized_at=now,
                start_deadline=now + billing.policy.start_deadline,
            ),
        ]

    if priced.free_of_charge:
        await repo.insert_session(**base, status="authorized", funding="free", authorized_at=now)
        return authorized("free", None, 0, SessionLimits())

    async def hold(
        funding: str,
        amount: int,
        *,
        code: str,
        debit_account_id: uuid.UUID,
        settlement_id: uuid.UUID,
        expires_at: datetime | None,
        limits: SessionLimits,
        **row: Any,
    ) -> list[Event]:
        """The held funds as a pending transfer into the session's settlement account, and the
        session authorised (``row``: what else its row records of the funding)."""
        hold_id = derived_id("hold", priced.session_id)
        await ledger.create_transfer(
            TransferRequest(
                id=hold_id,
                kind=TransferKind.PENDING,
                amount=amount,
                currency=currency,
                code=code,
                debit_account_id=debit_account_id,
                credit_account_id=settlement_id,
                expires_at=expires_at,
                reference=str(priced.session_id),
            ),
            now,
        )
        await repo.insert_session(
            **base,
            status="authorized",
            funding=funding,
            hold_transfer_id=hold_id,
            hold_amount=amount,
            authorized_at=now,
            **row,
        )
        return authorized(funding, hold_id, amount, limits)

    async def card_hold(auth: Authorization, method_id: uuid.UUID) -> list[Event]:
        settlement_id, clearing_id = await ledger.open_all(
            (AccountKind.SESSION_SETTLEMENT, currency, priced.session_id),
            (AccountKind.PROCESSOR_CLEARING, currency, priced.user_id),
        )
        # The card hold mirrored in the ledger: the processor owes us at most this much.
        return await hold(
            "card",
            auth.amount,
            code="card_hold",
            debit_account_id=clearing_id,
            settlement_id=settlement_id,
            expires_at=auth.expires_at,
            limits=limits_for(auth.amount)[1],
            payment_method_id=method_id,
            payment_intent_id=auth.intent_id,
        )

    # A guest's hold placed on-session (3-D Secure done in its browser) pays this session.
    checkout, refused, _ = await guest_checkout.for_session(repo, priced.user_id, currency)
    if refused is not None:
        # The event names the payment as refused; the precise reason stays in billing's row.
        await repo.insert_session(**base, status="denied", denial_reason=refused.reason)
        return deny("payment_declined", refused.message)
    if checkout is not None and checkout.intent_id is not None:
        if not limits_for(checkout.amount)[0]:
            await guest_checkout.release(billing, session, priced.user_id)
            await repo.insert_session(**base, status="denied", denial_reason="insufficient_funds")
            return deny("insufficient_funds", "The hold would not buy any charging here.")
        await repo.update_guest_checkout(
            priced.user_id, status="used", session_id=priced.session_id
        )
        held = Authorization(checkout.intent_id, checkout.amount, currency, checkout.expires_at)
        return await card_hold(held, checkout.payment_method_id)

    wallet_id = await ledger.open(AccountKind.WALLET, currency, priced.user_id)
    card = await repo.default_method(priced.user_id)

    def choose(available: int) -> FundingChoice:
        wallet_hold = min(available, billing.policy.holds.wallet_hold_cap)
        return choose_funding(
            free=False,
            wallet_hold=wallet_hold,
            wallet_buys_charging=wallet_hold > 0 and limits_for(wallet_hold)[0],
            prefers_card=profile.prefers_card,
            has_card=card is not None,
            max_power_w=priced.max_power_w,
            policy=billing.policy.holds,
        )

    account = await ledger.account(wallet_id)
    choice = choose(account.available if account else 0)
    if choice.funding == "wallet":
        # Decided again with the wallet row locked until commit: no spend slips in between
        # the decision and the hold. A card decision locks no ledger row: the processor call
        # below must not hold one.
        locked = await ledger.lock_accounts((wallet_id,))
        choice = choose(locked[wallet_id].available)
    if choice.funding is None:
        await repo.insert_session(**base, status="denied", denial_reason=choice.denial)
        return deny(choice.denial or "insufficient_funds", choice.message)
    affordable, limits = limits_for(choice.max_cost)
    if not affordable:
        await repo.insert_session(**base, status="denied", denial_reason="insufficient_funds")
        return deny("insufficient_funds", "The hold would not buy any charging here.")
    settlement_id, _clearing = await ledger.open_all(
        (AccountKind.SESSION_SETTLEMENT, currency, priced.session_id),
        (AccountKind.PROCESSOR_CLEARING, currency, priced.user_id),
    )
    if choice.funding == "wallet":
        return await hold(
            "wallet",
            choice.amount,
            code="session_hold",
            debit_account_id=wallet_id,
            settlement_id=settlement_id,
            expires_at=now + billing.policy.wallet_hold_ttl,
            limits=limits,
            max_cost=choice.max_cost,
        )
    assert card is not None
    customer = await processor_customer(billing, repo, profile)
    try:
        auth = await billing.processor.authorize(
            CardPayment(
                customer,
                card.processor_token,
                choice.amount,
                currency,
                metadata={"session_id": str(priced.session_id), "user_id": str(priced.user_id)},
            ),
            idempotency_key=f"hold:{priced.session_id}",
        )
    except PaymentDeclined as declined:
        await repo.record_decline(priced.user_id, None, declined.code, now)
        await repo.insert_session(
            **base, status="denied", denial_reason="payment_declined", payment_method_id=card.id
        )
        return deny("payment_declined", decline_message(declined.code))
    except ProcessorError as error:
        await repo.insert_session(
            **base, status="denied", denial_reason="payment_declined", payment_method_id=card.id
        )
        return deny("payment_declined", f"The card could not be charged ({error.code}).")
    return await card_hold(auth, card.id)


async def release(
    billing: Billing, session: AsyncSession, session_id: uuid.UUID
) -> tuple[list[Event], list[ProcessorCall]]:
    """Void the hold of a session that will not be billed (abandoned, failed, cancelled at the
    processor); a card hold is cancelled at the processor after the commit."""
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    row = await repo.session_row(session_id)
    if row is None or row.status != "authorized":
        return [], []
    await repo.lock_profile(row.user_id)
    row = await repo.session_row(session_id, lock=True)
    if row is None or row.status != "authorized":
        return [], []
    now = billing.clock()
    await repo.update_session(session_id, status="released")
    if row.hold_transfer_id is None:
        return [], []
    hold = await ledger.transfer(row.hold_transfer_id)
    assert hold is not None
    if await ledger.resolution_of(hold.id) is not None:
        return [], []
    await ledger.lock_accounts((hold.debit_account_id, hold.credit_account_id))
    await end_hold(ledger, hold, now)
    released, calls = await _hold_released(repo, row, hold, now)
    return [released], calls


async def expire_due_holds(
    billing: Billing, session: AsyncSession, limit: int = 100
) -> tuple[list[Event], list[ProcessorCall]]:
    """The sweeper: expire pending transfers past their expiry (each exactly once)."""
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    now = billing.clock()
    events: list[Event] = []
    calls: list[ProcessorCall] = []
    for hold in await ledger.due_for_expiry(now, limit):
        row = await repo.session_row(uuid.UUID(hold.reference)) if hold.reference else None
        if row is not None:
            await repo.lock_profile(row.user_id)
        await ledger.lock_accounts((hold.debit_account_id, hold.credit_account_id))
        if await ledger.resolution_of(hold.id) is not None:
            continue
        await end_hold(ledger, hold, now, TransferKind.EXPIRE)
        if row is not None:
            released, cancels = await _hold_released(repo, row, hold, now)
            events.append(released)
            calls.extend(cancels)
    return events, calls


async def _hold_released(
    repo: BillingRepository, row: Row[Any], hold: Transfer, now: datetime
) -> tuple[SessionHoldReleased, list[ProcessorCall]]:
    """The event of a session's ended hold, and for a card hold the cancel at the processor
    (called after the commit)."""
    calls = []
    if row.funding == "card" and row.payment_intent_id:
        calls.append(
            await record_call(
                repo,
                f"cancel:{row.session_id}",
                "cancel",
                row.session_id,
                intent_id=row.payment_intent_id,
            )
        )
    released = SessionHoldReleased(
        session_id=row.session_id,
        user_id=row.user_id,
        hold_id=hold.id,
        released=Money(amount_minor=hold.amount, currency=hold.currency),
        released_at=now,
    )
    return released, calls
