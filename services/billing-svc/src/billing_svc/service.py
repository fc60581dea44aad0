"""billing-svc's use cases, shared by the event handlers and the HTTP endpoints.

Each takes the caller's session (one transaction) and returns the events to publish; nothing
here commits. Money moves only through ledger transfers whose ids are derived from what caused
them (the session, the top-up, the refund), and processor calls carry idempotency keys derived
the same way: replaying an event, retrying a request or crashing half-way never moves money
twice.

Lock order, everywhere: the driver's ``billing_accounts`` row first (serialises one driver's
money decisions, such as an auto top-up), then account rows in id order, organisation-wide
accounts (revenue, VAT) last.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from plugpay_events.bus.port import PoisonEvent
from plugpay_events.contracts.billing import (
    AutoTopUpConfigured,
    PaymentMethodAdded,
    PaymentMethodRemoved,
    RefundIssued,
    TopUpFailed,
    WalletToppedUp,
)
from plugpay_events.contracts.sessions import (
    SessionAuthorized,
    SessionBilled,
    SessionCostCalculated,
    SessionDenied,
    SessionHoldReleased,
    SessionLimits,
    SessionPriced,
)
from plugpay_events.envelope import Event
from plugpay_events.types import Money, utc_now
from plugpay_platform.errors import Refusal
from plugpay_tariffs import purchasable_limits
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import (
    AccountKind,
    HoldPolicy,
    LedgerRefusal,
    MoneyLimits,
    TransferKind,
    TransferRequest,
    auto_topup_amount,
    cap_cost,
    choose_funding,
    derived_id,
    needs_auto_topup,
    plan_shortfall,
    topup_problem,
)
from billing_svc.processor import PaymentDeclined, PaymentProcessor, ProcessorError
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


@dataclass(frozen=True)
class BillingPolicy:
    """The knobs of authorisation (from settings)."""

    holds: HoldPolicy
    start_deadline: timedelta = timedelta(minutes=3)
    wallet_hold_ttl: timedelta = timedelta(days=2)
    money_limits: Callable[[str], MoneyLimits] = field(default=lambda _currency: DEFAULT_LIMITS)
    max_declines: int = 5
    decline_window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class TopUpResult:
    topup_id: uuid.UUID
    status: str  # succeeded | failed
    amount: int
    currency: str
    balance_after: int
    failure_reason: str | None = None


class BillingService:
    """The use cases. One instance per app; state lives in PostgreSQL (and the processor)."""

    def __init__(
        self,
        processor: PaymentProcessor,
        policy: BillingPolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.processor = processor
        self.policy = policy
        self.clock = clock

    # --- helpers ------------------------------------------------------------------------

    async def _customer(self, repo: BillingRepository, profile: BillingProfile) -> str:
        if profile.processor_customer_id:
            return profile.processor_customer_id
        customer = await self.processor.create_customer(
            profile.user_id, idempotency_key=f"customer:{profile.user_id}"
        )
        await repo.update_profile(profile.user_id, processor_customer_id=customer)
        return customer

    async def _refuse_after_declines(
        self, repo: BillingRepository, user_id: uuid.UUID, client_address: str | None
    ) -> None:
        """Card testing: after too many declines in the window, no more processor calls."""
        now = self.clock()
        declines = await repo.recent_declines(
            user_id, client_address, now - self.policy.decline_window
        )
        if len(declines) < self.policy.max_declines:
            return
        frees_at = declines[-self.policy.max_declines] + self.policy.decline_window
        retry_after = max(math.ceil((frees_at - now).total_seconds()), 1)
        raise Refusal(
            "too_many_declines",
            "too many declined payments; try again later",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )

    async def _wallet(
        self, ledger: LedgerRepository, user_id: uuid.UUID, currency: str
    ) -> tuple[uuid.UUID, int, int]:
        """(wallet id, balance, available), opening the wallet if needed."""
        wallet_id = await ledger.open(AccountKind.WALLET, currency, user_id)
        account = await ledger.account(wallet_id)
        assert account is not None
        return wallet_id, account.balance, account.available

    # --- wallets and top-ups ----------------------------------------------------------------

    async def open_wallet(self, session: AsyncSession, user_id: uuid.UUID, currency: str) -> None:
        await BillingRepository(session).ensure_profile(user_id)
        await LedgerRepository(session).open(AccountKind.WALLET, currency, user_id)

    async def top_up(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        topup_id: uuid.UUID,
        amount: int,
        currency: str,
        method: PaymentMethod,
        trigger: str,
        client_address: str | None = None,
    ) -> tuple[TopUpResult, list[Event]]:
        """Charge the card and credit the wallet; declines are recorded, not raised.

        Every bound is checked before the processor is called (a refusal charges nothing)."""
        repo, ledger = BillingRepository(session), LedgerRepository(session)
        profile = await repo.lock_profile(user_id)
        wallet_id, balance, _ = await self._wallet(ledger, user_id, currency)
        done = await repo.topup(topup_id)
        if done is not None:
            return TopUpResult(
                topup_id, done.status, done.amount, done.currency, balance, done.failure_reason
            ), []
        problem = topup_problem(
            amount, balance, self.policy.money_limits(currency), auto=trigger == "auto"
        )
        if problem is not None:
            raise Refusal(*problem, status_code=422)
        await self._refuse_after_declines(repo, user_id, client_address)
        now = self.clock()
        customer = await self._customer(repo, profile)
        try:
            charge = await self.processor.charge(
                customer,
                method.processor_token,
                amount,
                currency,
                idempotency_key=f"topup:{topup_id}",
                metadata={"user_id": str(user_id), "topup_id": str(topup_id)},
            )
        except PaymentDeclined as declined:
            await repo.record_decline(user_id, client_address, declined.code, now)
            await repo.insert_topup(
                id=topup_id,
                user_id=user_id,
                amount=amount,
                currency=currency,
                trigger=trigger,
                status="failed",
                payment_method_id=method.id,
                failure_reason=declined.code,
            )
            _, balance, _ = await self._wallet(ledger, user_id, currency)
            event = TopUpFailed(
                user_id=user_id,
                topup_id=topup_id,
                amount=Money(amount_minor=amount, currency=currency),
                trigger=trigger,  # type: ignore[arg-type]
                reason=declined.code,
                failed_at=now,
            )
            return TopUpResult(topup_id, "failed", amount, currency, balance, declined.code), [
                event
            ]
        clearing = await ledger.open(AccountKind.PROCESSOR_CLEARING, currency, user_id)
        await ledger.create_transfer(
            TransferRequest(
                id=derived_id("topup", topup_id),
                kind=TransferKind.SINGLE,
                amount=amount,
                currency=currency,
                code="topup",
                debit_account_id=clearing,
                credit_account_id=wallet_id,
                reference=charge.intent_id,
            ),
            now,
        )
        await repo.insert_topup(
            id=topup_id,
            user_id=user_id,
            amount=amount,
            currency=currency,
            trigger=trigger,
            status="succeeded",
            payment_method_id=method.id,
            payment_intent_id=charge.intent_id,
        )
        await self._repay_debt(ledger, user_id, currency, cause=topup_id)
        _, balance, _ = await self._wallet(ledger, user_id, currency)
        event = WalletToppedUp(
            user_id=user_id,
            topup_id=topup_id,
            amount=Money(amount_minor=amount, currency=currency),
            trigger=trigger,  # type: ignore[arg-type]
            balance_after=Money(amount_minor=balance, currency=currency),
            topped_up_at=now,
        )
        return TopUpResult(topup_id, "succeeded", amount, currency, balance), [event]

    async def _repay_debt(
        self, ledger: LedgerRepository, user_id: uuid.UUID, currency: str, *, cause: uuid.UUID
    ) -> None:
        # New money in the wallet first pays what the driver still owes from past sessions.
        receivable = await ledger.account(
            await ledger.open(AccountKind.RECEIVABLE, currency, user_id)
        )
        wallet_id, _, available = await self._wallet(ledger, user_id, currency)
        assert receivable is not None
        amount = min(available, receivable.balance)
        if amount > 0:
            await ledger.create_transfer(
                TransferRequest(
                    id=derived_id("debt-repayment", cause),
                    kind=TransferKind.SINGLE,
                    amount=amount,
                    currency=currency,
                    code="debt_repayment",
                    debit_account_id=wallet_id,
                    credit_account_id=receivable.id,
                    reference=str(cause),
                ),
                self.clock(),
            )

    async def _auto_top_up(
        self,
        session: AsyncSession,
        profile: BillingProfile,
        currency: str,
        cause: str,
    ) -> list[Event]:
        """Top up when enabled and the free balance is under the threshold (patent FIG. 3)."""
        if profile.auto_topup_currency != currency:
            return []
        repo, ledger = BillingRepository(session), LedgerRepository(session)
        _, balance, available = await self._wallet(ledger, profile.user_id, currency)
        if not needs_auto_topup(
            enabled=profile.auto_topup_enabled,
            available=available,
            threshold=profile.auto_topup_threshold,
        ):
            return []
        method = None
        if profile.auto_topup_payment_method_id:
            method = await repo.method(profile.user_id, profile.auto_topup_payment_method_id)
        method = method or await repo.default_method(profile.user_id)
        amount = auto_topup_amount(
            profile.auto_topup_amount, balance, self.policy.money_limits(currency)
        )
        if method is None or amount <= 0:
            return []
        try:
            _, events = await self.top_up(
                session,
                user_id=profile.user_id,
                topup_id=derived_id("auto-topup", cause),
                amount=amount,
                currency=currency,
                method=method,
                trigger="auto",
            )
        except Refusal:
            return []  # after repeated declines: no more attempts until the window passes
        return events

    # --- authorisation (SessionPriced) ----------------------------------------------------

    async def authorize(self, session: AsyncSession, priced: SessionPriced) -> list[Event]:
        repo, ledger = BillingRepository(session), LedgerRepository(session)
        if await repo.session_row(priced.session_id) is not None:
            return []  # handled before (a replay with a new event id)
        profile = await repo.lock_profile(priced.user_id)
        now = self.clock()
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
                    reason=reason,  # type: ignore[arg-type]
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
                    funding=funding,  # type: ignore[arg-type]
                    hold_id=hold_id,
                    hold_amount=Money(amount_minor=amount, currency=currency),
                    limits=limits,
                    authorized_at=now,
                    start_deadline=now + self.policy.start_deadline,
                ),
            ]

        if priced.free_of_charge:
            await repo.insert_session(
                **base, status="authorized", funding="free", authorized_at=now
            )
            return authorized("free", None, 0, SessionLimits())

        # Top up first when the balance is under the driver's minimum, then decide.
        events += await self._auto_top_up(
            session, profile, currency, f"authorize:{priced.session_id}"
        )
        wallet_id = await ledger.open(AccountKind.WALLET, currency, priced.user_id)
        # The wallet row stays locked until commit: no spend slips in between the decision
        # and the hold (the hold's accounts are then locked again, in id order, by the ledger).
        locked = await ledger.lock_accounts((wallet_id,))
        wallet_hold = min(locked[wallet_id].available, self.policy.holds.wallet_hold_cap)
        wallet_buys = wallet_hold > 0 and limits_for(wallet_hold)[0]
        card = await repo.default_method(priced.user_id)
        choice = choose_funding(
            free=False,
            wallet_hold=wallet_hold,
            wallet_buys_charging=wallet_buys,
            prefers_card=profile.prefers_card,
            has_card=card is not None,
            max_power_w=priced.max_power_w,
            policy=self.policy.holds,
        )
        if choice.funding is None:
            await repo.insert_session(**base, status="denied", denial_reason=choice.denial)
            return deny(choice.denial or "insufficient_funds", choice.message)
        affordable, limits = limits_for(choice.amount)
        if not affordable:
            await repo.insert_session(**base, status="denied", denial_reason="insufficient_funds")
            return deny("insufficient_funds", "The hold would not buy any charging here.")
        hold_id = derived_id("hold", priced.session_id)
        settlement_id = await ledger.open(
            AccountKind.SESSION_SETTLEMENT, currency, priced.session_id
        )
        clearing_id = await ledger.open(AccountKind.PROCESSOR_CLEARING, currency, priced.user_id)
        if choice.funding == "wallet":
            await ledger.create_transfer(
                TransferRequest(
                    id=hold_id,
                    kind=TransferKind.PENDING,
                    amount=choice.amount,
                    currency=currency,
                    code="session_hold",
                    debit_account_id=wallet_id,
                    credit_account_id=settlement_id,
                    expires_at=now + self.policy.wallet_hold_ttl,
                    reference=str(priced.session_id),
                ),
                now,
            )
            await repo.insert_session(
                **base,
                status="authorized",
                funding="wallet",
                hold_transfer_id=hold_id,
                hold_amount=choice.amount,
                authorized_at=now,
            )
            return authorized("wallet", hold_id, choice.amount, limits)
        assert card is not None
        customer = await self._customer(repo, profile)
        try:
            auth = await self.processor.authorize(
                customer,
                card.processor_token,
                choice.amount,
                currency,
                idempotency_key=f"hold:{priced.session_id}",
                metadata={"session_id": str(priced.session_id), "user_id": str(priced.user_id)},
            )
        except PaymentDeclined as declined:
            await repo.record_decline(priced.user_id, None, declined.code, now)
            await repo.insert_session(
                **base, status="denied", denial_reason="payment_declined", payment_method_id=card.id
            )
            return deny("payment_declined", f"Your card was declined ({declined.code}).")
        except ProcessorError as error:
            await repo.insert_session(
                **base, status="denied", denial_reason="payment_declined", payment_method_id=card.id
            )
            return deny("payment_declined", f"The card could not be charged ({error.code}).")
        # The card hold mirrored in the ledger: the processor owes us at most this much.
        await ledger.create_transfer(
            TransferRequest(
                id=hold_id,
                kind=TransferKind.PENDING,
                amount=auth.amount,
                currency=currency,
                code="card_hold",
                debit_account_id=clearing_id,
                credit_account_id=settlement_id,
                expires_at=auth.expires_at,
                reference=str(priced.session_id),
            ),
            now,
        )
        await repo.insert_session(
            **base,
            status="authorized",
            funding="card",
            hold_transfer_id=hold_id,
            hold_amount=auth.amount,
            payment_method_id=card.id,
            payment_intent_id=auth.intent_id,
            authorized_at=now,
        )
        return authorized("card", hold_id, auth.amount, limits)

    # --- settlement (SessionCostCalculated) ---------------------------------------------

    async def settle(self, session: AsyncSession, cost: SessionCostCalculated) -> list[Event]:
        repo, ledger = BillingRepository(session), LedgerRepository(session)
        row = await repo.session_row(cost.session_id)
        if row is None:
            raise PoisonEvent("cost for a session billing never authorised")
        if row.status == "billed":
            return []
        if row.status == "denied":
            raise PoisonEvent("cost for a session billing denied")
        breakdown = cost.breakdown
        currency = row.currency
        total = cost.total.amount_minor
        if cost.total.currency != currency or breakdown.currency != currency:
            raise PoisonEvent("cost currency differs from the held currency")
        if (
            total != breakdown.total_incl_vat
            or total != breakdown.total_excl_vat + breakdown.total_vat
        ):
            raise PoisonEvent("cost total differs from its breakdown")
        if total < 0:
            raise PoisonEvent("negative cost")
        profile = await repo.lock_profile(row.user_id)
        row = await repo.session_row(cost.session_id, lock=True)
        assert row is not None
        if row.status == "billed":
            return []
        now = self.clock()
        user, sid, org = row.user_id, row.session_id, row.organisation_id
        wallet_id = await ledger.open(AccountKind.WALLET, currency, user)
        settlement_id = await ledger.open(AccountKind.SESSION_SETTLEMENT, currency, sid)
        clearing_id = await ledger.open(AccountKind.PROCESSOR_CLEARING, currency, user)
        receivable_id = await ledger.open(AccountKind.RECEIVABLE, currency, user)
        revenue_id = await ledger.open(AccountKind.REVENUE, currency, org)
        vat_id = await ledger.open(AccountKind.VAT_PAYABLE, currency, org)
        locked = await ledger.lock_accounts((wallet_id, settlement_id, clearing_id, receivable_id))
        await ledger.lock_accounts((revenue_id, vat_id))

        pending = 0
        hold = await ledger.transfer(row.hold_transfer_id) if row.hold_transfer_id else None
        if hold is not None and await ledger.resolution_of(hold.id) is None:
            expired = hold.expires_at is not None and now >= hold.expires_at
            if expired:
                await self._end_hold(ledger, hold.id, TransferKind.EXPIRE, now)
            else:
                pending = hold.amount
        funding = row.funding
        card = await repo.default_method(user)
        held_card = (
            await repo.method(user, row.payment_method_id) if row.payment_method_id else None
        )
        # The driver agreed to at most the hold before the start: above it is the operator's.
        capped = cap_cost(total, breakdown.total_excl_vat, breakdown.total_vat, row.hold_amount)
        total = capped.payable
        from_hold = min(total, pending)
        if funding == "card" and pending:
            try:
                if from_hold > 0:
                    await self.processor.capture(
                        row.payment_intent_id, from_hold, idempotency_key=f"capture:{sid}"
                    )
                else:
                    await self.processor.cancel(
                        row.payment_intent_id, idempotency_key=f"cancel:{sid}"
                    )
            except ProcessorError:
                # The card hold is gone at the processor (expired, cancelled): charge anew.
                await self._end_hold(ledger, hold.id, TransferKind.VOID, now)  # type: ignore[union-attr]
                pending, from_hold = 0, 0
        wallet_free = locked[wallet_id].available if funding == "wallet" else 0
        plan = plan_shortfall(total, pending, wallet_free, card is not None)
        if hold is not None and pending:
            if plan.from_hold > 0:
                await ledger.create_transfer(
                    TransferRequest(
                        id=derived_id("capture", sid),
                        kind=TransferKind.POST,
                        amount=plan.from_hold,
                        currency=currency,
                        code="session_capture",
                        pending_id=hold.id,
                        reference=str(sid),
                    ),
                    now,
                )
            else:
                await self._end_hold(ledger, hold.id, TransferKind.VOID, now)

        def single(
            key: str, code: str, debit: uuid.UUID, credit: uuid.UUID, amount: int
        ) -> TransferRequest:
            return TransferRequest(
                id=derived_id(key, sid),
                kind=TransferKind.SINGLE,
                amount=amount,
                currency=currency,
                code=code,
                debit_account_id=debit,
                credit_account_id=credit,
                reference=str(sid),
            )

        if plan.from_wallet > 0:
            await ledger.create_transfer(
                single(
                    "shortfall-wallet",
                    "session_shortfall",
                    wallet_id,
                    settlement_id,
                    plan.from_wallet,
                ),
                now,
            )
        debt = plan.to_debt
        from_card = 0
        if plan.from_card > 0 and card is not None:
            customer = await self._customer(repo, profile)
            try:
                charge = await self.processor.charge(
                    customer,
                    card.processor_token,
                    plan.from_card,
                    currency,
                    idempotency_key=f"shortfall:{sid}",
                    metadata={"session_id": str(sid)},
                )
                from_card = charge.amount
                await ledger.create_transfer(
                    single(
                        "shortfall-card", "session_shortfall", clearing_id, settlement_id, from_card
                    ),
                    now,
                )
            except ProcessorError:
                debt += plan.from_card
        if debt > 0:
            # Never dropped: the driver owes it, and the next top-up pays it first.
            await ledger.create_transfer(
                single("debt", "session_debt", receivable_id, settlement_id, debt), now
            )
        for key, code, account, amount in (
            ("revenue", "operator_revenue", revenue_id, capped.payable_excl_vat),
            ("vat", "vat_collected", vat_id, capped.payable_vat),
        ):
            if amount > 0:
                await ledger.create_transfer(single(key, code, settlement_id, account, amount), now)
        charged = plan.from_hold + plan.from_wallet + from_card
        wallet_part = plan.from_wallet + (plan.from_hold if funding == "wallet" else 0)
        card_part = from_card + (plan.from_hold if funding == "card" else 0)
        label = payment_label(
            wallet_part=wallet_part,
            card_part=card_part,
            card=held_card or card,
            free=funding == "free",
        )
        if capped.written_off > 0:
            await repo.insert_cost_overrun(
                session_id=sid,
                organisation_id=org,
                station_id=row.station_id,
                user_id=user,
                currency=currency,
                claimed_total=capped.claimed,
                claimed_excl_vat=breakdown.total_excl_vat,
                claimed_vat=breakdown.total_vat,
                energy_wh=breakdown.energy_wh,
                authorised_max=capped.cap,
                written_off=capped.written_off,
                created_at=now,
            )
        wallet = await ledger.account(wallet_id)
        receivable = await ledger.account(receivable_id)
        assert wallet is not None and receivable is not None
        receipt_id = derived_id("receipt", sid)
        starts = [line.period_start for line in breakdown.lines]
        ends = [line.period_end for line in breakdown.lines]
        await repo.insert_receipt(
            id=receipt_id,
            session_id=sid,
            user_id=user,
            organisation_id=org,
            station_id=row.station_id,
            currency=currency,
            total_excl_vat=capped.payable_excl_vat,
            total_vat=capped.payable_vat,
            total_incl_vat=total,
            charged=charged,
            wallet_part=wallet_part,
            card_part=card_part,
            authorised_max=capped.cap,
            claimed_total=capped.claimed,
            capped=capped.written_off,
            debt=debt,
            funding=funding,
            payment_method_label=label,
            energy_wh=breakdown.energy_wh,
            started_at=min(starts) if starts else None,
            ended_at=max(ends) if ends else None,
            breakdown=breakdown.model_dump(mode="json"),
            balance_after=wallet.available,
            issued_at=now,
        )
        await repo.update_session(sid, status="billed")
        events: list[Event] = [
            SessionBilled(
                session_id=sid,
                user_id=user,
                receipt_id=receipt_id,
                charged=Money(amount_minor=charged, currency=currency),
                funding=funding,
                wallet_charged=Money(amount_minor=wallet_part, currency=currency),
                card_charged=Money(amount_minor=card_part, currency=currency),
                capped=(
                    Money(amount_minor=capped.written_off, currency=currency)
                    if capped.written_off
                    else None
                ),
                balance_after=Money(amount_minor=wallet.available, currency=currency),
                outstanding_debt=(
                    Money(amount_minor=receivable.balance, currency=currency)
                    if receivable.balance > 0
                    else None
                ),
                billed_at=now,
            )
        ]
        if funding == "wallet":
            events += await self._auto_top_up(session, profile, currency, f"settle:{sid}")
        return events

    async def _end_hold(
        self, ledger: LedgerRepository, hold_id: uuid.UUID, kind: TransferKind, now: datetime
    ) -> None:
        hold = await ledger.transfer(hold_id)
        assert hold is not None
        await ledger.create_transfer(
            TransferRequest(
                id=derived_id(kind.value, hold_id),
                kind=kind,
                amount=0,
                currency=hold.currency,
                code="hold_expired" if kind is TransferKind.EXPIRE else "hold_released",
                pending_id=hold_id,
                reference=hold.reference,
            ),
            now,
        )

    # --- release (SessionAbandoned / SessionFailed) and expiry ----------------------------

    async def release(self, session: AsyncSession, session_id: uuid.UUID) -> list[Event]:
        repo, ledger = BillingRepository(session), LedgerRepository(session)
        row = await repo.session_row(session_id)
        if row is None or row.status != "authorized":
            return []
        await repo.lock_profile(row.user_id)
        row = await repo.session_row(session_id, lock=True)
        if row is None or row.status != "authorized":
            return []
        now = self.clock()
        await repo.update_session(session_id, status="released")
        if row.hold_transfer_id is None:
            return []
        hold = await ledger.transfer(row.hold_transfer_id)
        assert hold is not None
        if await ledger.resolution_of(hold.id) is not None:
            return []
        expired = hold.expires_at is not None and now >= hold.expires_at
        await ledger.lock_accounts((hold.debit_account_id, hold.credit_account_id))
        await self._end_hold(
            ledger, hold.id, TransferKind.EXPIRE if expired else TransferKind.VOID, now
        )
        if row.funding == "card" and row.payment_intent_id:
            # Already expired or cancelled at the processor: nothing is held there any more.
            with contextlib.suppress(ProcessorError):
                await self.processor.cancel(
                    row.payment_intent_id, idempotency_key=f"cancel:{session_id}"
                )
        return [
            SessionHoldReleased(
                session_id=session_id,
                user_id=row.user_id,
                hold_id=hold.id,
                released=Money(amount_minor=hold.amount, currency=hold.currency),
                released_at=now,
            )
        ]

    async def expire_due_holds(self, session: AsyncSession, limit: int = 100) -> list[Event]:
        """The sweeper: expire pending transfers past their expiry (each exactly once)."""
        repo, ledger = BillingRepository(session), LedgerRepository(session)
        now = self.clock()
        events: list[Event] = []
        for hold in await ledger.due_for_expiry(now, limit):
            row = await repo.session_row(uuid.UUID(hold.reference)) if hold.reference else None
            if row is not None:
                await repo.lock_profile(row.user_id)
            await ledger.lock_accounts((hold.debit_account_id, hold.credit_account_id))
            if await ledger.resolution_of(hold.id) is not None:
                continue
            await self._end_hold(ledger, hold.id, TransferKind.EXPIRE, now)
            if row is not None:
                if row.funding == "card" and row.payment_intent_id:
                    with contextlib.suppress(ProcessorError):
                        await self.processor.cancel(
                            row.payment_intent_id, idempotency_key=f"cancel:{row.session_id}"
                        )
                events.append(
                    SessionHoldReleased(
                        session_id=row.session_id,
                        user_id=row.user_id,
                        hold_id=hold.id,
                        released=Money(amount_minor=hold.amount, currency=hold.currency),
                        released_at=now,
                    )
                )
        return events

    # --- payment methods, settings ---------------------------------------------------------

    async def add_payment_method(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        token: str,
        client_address: str | None = None,
    ) -> tuple[PaymentMethod, list[Event]]:
        repo = BillingRepository(session)
        profile = await repo.lock_profile(user_id)
        method_id = derived_id("payment-method", user_id, token)
        existing = await repo.method(user_id, method_id)
        if existing is not None:
            return existing, []
        await self._refuse_after_declines(repo, user_id, client_address)
        customer = await self._customer(repo, profile)
        try:
            card = await self.processor.attach_payment_method(
                customer, token, idempotency_key=f"attach:{user_id}:{token}"
            )
        except ProcessorError as error:
            raise Refusal("payment_method_invalid", error.message, status_code=422) from error
        first = not await repo.methods(user_id)
        method = PaymentMethod(
            id=method_id,
            user_id=user_id,
            processor_token=card.token,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            is_default=first,
        )
        await repo.add_method(method)
        stored = await repo.method(user_id, method_id)
        if stored is None:
            # The id was used by a card removed earlier: a re-added card gets a fresh id.
            method = PaymentMethod(**{**method.__dict__, "id": uuid.uuid4()})
            await repo.add_method(method)
        return method, [
            PaymentMethodAdded(
                user_id=user_id,
                payment_method_id=method.id,
                brand=method.brand,
                last4=method.last4,
                added_at=self.clock(),
            )
        ]

    async def remove_payment_method(
        self, session: AsyncSession, user_id: uuid.UUID, method_id: uuid.UUID
    ) -> list[Event]:
        repo = BillingRepository(session)
        await repo.lock_profile(user_id)
        method = await repo.method(user_id, method_id)
        if method is None:
            raise Refusal("not_found", "no such payment method", status_code=404)
        # Already gone at the processor: we still forget it.
        with contextlib.suppress(ProcessorError):
            await self.processor.detach_payment_method(
                method.processor_token, idempotency_key=f"detach:{method.id}"
            )
        await repo.remove_method(user_id, method_id)
        remaining = await repo.methods(user_id)
        if method.is_default and remaining:
            await repo.set_default(user_id, remaining[0].id)
        return [
            PaymentMethodRemoved(
                user_id=user_id, payment_method_id=method_id, removed_at=self.clock()
            )
        ]

    async def set_default_method(
        self, session: AsyncSession, user_id: uuid.UUID, method_id: uuid.UUID
    ) -> None:
        repo = BillingRepository(session)
        await repo.lock_profile(user_id)
        if await repo.method(user_id, method_id) is None:
            raise Refusal("not_found", "no such payment method", status_code=404)
        await repo.set_default(user_id, method_id)

    async def configure_auto_topup(
        self,
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
        limits = self.policy.money_limits(amount.currency)
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
                configured_at=self.clock(),
            )
        ]

    # --- refunds ------------------------------------------------------------------------

    async def refund(
        self,
        session: AsyncSession,
        *,
        refund_id: uuid.UUID,
        session_id: uuid.UUID,
        amount: int,
        reason: str,
        issued_by: uuid.UUID,
        organisation_id: uuid.UUID | None,
        any_organisation: bool,
    ) -> tuple[dict[str, Any], list[Event]]:
        repo, ledger = BillingRepository(session), LedgerRepository(session)
        receipt = await repo.receipt(session_id)
        if receipt is None:
            raise Refusal("not_found", "no receipt for this session", status_code=404)
        if not any_organisation and receipt.organisation_id != organisation_id:
            raise Refusal("forbidden", "this session was not at your stations", status_code=403)
        await repo.lock_profile(receipt.user_id)
        refundable = receipt.charged - await repo.refunded(session_id)
        if amount <= 0 or amount > refundable:
            raise Refusal(
                "refund_exceeds_charged",
                f"at most {refundable} minor units can still be refunded",
                status_code=422,
            )
        row = await repo.session_row(session_id)
        assert row is not None
        now = self.clock()
        currency, user, org = receipt.currency, receipt.user_id, receipt.organisation_id
        # Reverse revenue and VAT in the proportion they were collected.
        vat_part = (
            amount * receipt.total_vat // receipt.total_incl_vat if receipt.total_incl_vat else 0
        )
        settlement_id = await ledger.open(AccountKind.SESSION_SETTLEMENT, currency, session_id)
        wallet_id = await ledger.open(AccountKind.WALLET, currency, user)
        clearing_id = await ledger.open(AccountKind.PROCESSOR_CLEARING, currency, user)
        revenue_id = await ledger.open(AccountKind.REVENUE, currency, org)
        vat_id = await ledger.open(AccountKind.VAT_PAYABLE, currency, org)
        await ledger.lock_accounts((wallet_id, settlement_id, clearing_id))
        await ledger.lock_accounts((revenue_id, vat_id))
        destination = "wallet" if receipt.funding != "card" else "card"
        if destination == "card":
            try:
                await self.processor.refund(
                    row.payment_intent_id, amount, idempotency_key=f"refund:{refund_id}"
                )
            except ProcessorError as error:
                raise Refusal("refund_failed", error.message, status_code=409) from error
        moves = [
            ("refund-revenue", revenue_id, settlement_id, amount - vat_part),
            ("refund-vat", vat_id, settlement_id, vat_part),
            (
                "refund-out",
                settlement_id,
                wallet_id if destination == "wallet" else clearing_id,
                amount,
            ),
        ]
        for key, debit, credit, value in moves:
            if value > 0:
                await ledger.create_transfer(
                    TransferRequest(
                        id=derived_id(key, refund_id),
                        kind=TransferKind.SINGLE,
                        amount=value,
                        currency=currency,
                        code="refund",
                        debit_account_id=debit,
                        credit_account_id=credit,
                        reference=str(session_id),
                    ),
                    now,
                )
        await repo.insert_refund(
            id=refund_id,
            session_id=session_id,
            user_id=user,
            organisation_id=org,
            station_id=receipt.station_id,
            currency=currency,
            amount=amount,
            reason=reason,
            issued_by=issued_by,
            destination=destination,
            created_at=now,
        )
        body = {
            "refund_id": str(refund_id),
            "session_id": str(session_id),
            "amount": {"amount_minor": amount, "currency": currency},
            "destination": destination,
            "reason": reason,
            "issued_at": now.isoformat(),
        }
        return body, [
            RefundIssued(
                user_id=user,
                refund_id=refund_id,
                session_id=session_id,
                amount=Money(amount_minor=amount, currency=currency),
                reason=reason,
                issued_by=issued_by,
                issued_at=now,
            )
        ]


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


def wrap_all(events: Sequence[Event], caused_by: Any = None) -> list[Any]:
    """Envelopes for the outbox."""
    from plugpay_events.envelope import Envelope

    return [Envelope.wrap(e, producer=PRODUCER, caused_by=caused_by) for e in events]


__all__ = ["BillingPolicy", "BillingService", "LedgerRefusal", "TopUpResult", "wrap_all"]
