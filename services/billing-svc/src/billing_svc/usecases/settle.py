"""Settle: turn a session's final cost into money collected, revenue, VAT and a receipt.

Two steps, so no processor call is made while ledger rows are locked:
- ``record_cost`` (in the consumer's transaction, with its inbox claim): check the cost and
  keep it on the session, now ``settling``. It locks only the session's row.
- ``advance`` (short transactions, called by ``collect`` until the session is billed): posts
  what needs no processor, and when a card capture or charge is needed records it as a pending
  ``ProcessorCall`` and returns it; the caller commits, makes the call, records the outcome,
  and calls ``advance`` again, which posts it. Every amount is derived from what the ledger
  already holds (transfer ids derived from the session), so re-running a step after a crash
  finds its own work instead of repeating it; a pending call is made again with its key.

A final cost above the hold (the maximum the driver agreed to) is capped at it: the driver
pays at most that, and the difference is recorded as the operator's (``cost_overruns``).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field

from plugpay_events.bus.port import PoisonEvent
from plugpay_events.contracts.sessions import SessionBilled, SessionCostCalculated
from plugpay_events.envelope import Envelope, Event
from plugpay_events.outbox import Outbox
from plugpay_events.types import Money
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import (
    AccountKind,
    TransferKind,
    TransferRequest,
    cap_cost,
    derived_id,
)
from billing_svc.repository import BillingRepository, LedgerRepository
from billing_svc.tables import outbox_tables
from billing_svc.usecases import invoicing, top_up
from billing_svc.usecases.common import (
    Billing,
    ProcessorCall,
    UnitOfWork,
    authorised_max,
    end_hold,
    make_call,
    payment_label,
    post_moves,
    record_call,
    wrap_all,
)

_outbox = Outbox(outbox_tables)


async def record_cost(
    billing: Billing,
    session: AsyncSession,
    cost: SessionCostCalculated,
    caused_by: Envelope | None = None,
) -> list[Event]:
    """Keep a checked final cost on its session (``settling``); ``collect`` does the rest."""
    repo = BillingRepository(session)
    row = await repo.session_row(cost.session_id)
    if row is None:
        raise PoisonEvent("cost for a session billing never authorised")
    if row.status == "denied":
        raise PoisonEvent("cost for a session billing denied")
    breakdown = cost.breakdown
    total = cost.total.amount_minor
    if cost.total.currency != row.currency or breakdown.currency != row.currency:
        raise PoisonEvent("cost currency differs from the held currency")
    if total != breakdown.total_incl_vat or total != breakdown.total_excl_vat + breakdown.total_vat:
        raise PoisonEvent("cost total differs from its breakdown")
    if total < 0:
        raise PoisonEvent("negative cost")
    row = await repo.session_row(cost.session_id, lock=True)
    assert row is not None
    if row.status in ("billed", "settling"):
        return []  # a replay: the first cost is the one being collected
    await repo.update_session(
        cost.session_id,
        status="settling",
        cost=cost.model_dump(mode="json"),
        correlation_id=caused_by.correlation_id if caused_by else None,
        causation_id=caused_by.event_id if caused_by else None,
    )
    return []


@dataclass
class Step:
    """What one ``advance`` did: a call to make before the next step, or the session billed."""

    call: ProcessorCall | None = None
    events: list[Event] = field(default_factory=list)
    billed: bool = False
    user_id: uuid.UUID | None = None
    currency: str = ""
    funding: str = ""


async def advance(billing: Billing, session: AsyncSession, session_id: uuid.UUID) -> Step:
    """One short step of collecting a settling session's cost (see the module's docstring)."""
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    row = await repo.session_row(session_id)
    if row is None or row.status != "settling":
        return Step()
    profile = await repo.lock_profile(row.user_id)
    row = await repo.session_row(session_id, lock=True)
    if row is None or row.status != "settling":
        return Step()
    cost = SessionCostCalculated.model_validate(row.cost)
    breakdown = cost.breakdown
    now = billing.clock()
    currency, user, sid, org, funding = (
        row.currency,
        row.user_id,
        row.session_id,
        row.organisation_id,
        row.funding,
    )
    # The driver agreed to at most this before the start: above it is the operator's.
    capped = cap_cost(
        cost.total.amount_minor, breakdown.total_excl_vat, breakdown.total_vat, authorised_max(row)
    )
    payable = capped.payable
    (
        wallet_id,
        settlement_id,
        clearing_id,
        receivable_id,
        revenue_id,
        vat_id,
    ) = await ledger.open_all(
        (AccountKind.WALLET, currency, user),
        (AccountKind.SESSION_SETTLEMENT, currency, sid),
        (AccountKind.PROCESSOR_CLEARING, currency, user),
        (AccountKind.RECEIVABLE, currency, user),
        (AccountKind.REVENUE, currency, org),
        (AccountKind.VAT_PAYABLE, currency, org),
    )

    def single(
        key: str, code: str, debit: uuid.UUID, credit: uuid.UUID, amount: int
    ) -> TransferRequest:
        return TransferRequest.single(
            derived_id(key, sid), code, debit, credit, amount, currency, str(sid)
        )

    # 1. The hold: a card hold is captured (or cancelled) at the processor first.
    hold = await ledger.transfer(row.hold_transfer_id) if row.hold_transfer_id else None
    unresolved = hold is not None and await ledger.resolution_of(hold.id) is None
    expired = hold is not None and hold.expires_at is not None and now >= hold.expires_at
    wanted = min(payable, hold.amount) if hold is not None else 0
    outcome = None
    if hold is not None and funding == "card" and row.payment_intent_id:
        key = f"capture:{sid}" if wanted > 0 else f"cancel:{sid}"
        op = await repo.operation(key)
        if (op is not None and op.status == "pending") or (
            op is None and unresolved and not expired
        ):
            call = await record_call(
                repo,
                key,
                "capture" if wanted > 0 else "cancel",
                sid,
                intent_id=row.payment_intent_id,
                amount=wanted,
            )
            return Step(call=call)
        outcome = op.status if op is not None else None
    await ledger.lock_accounts((wallet_id, settlement_id, clearing_id, receivable_id))
    captured_at_processor = funding == "card" and outcome == "succeeded" and wanted > 0
    if hold is not None and unresolved:
        if (captured_at_processor or (funding != "card" and wanted > 0)) and not expired:
            await ledger.create_transfer(
                TransferRequest(
                    id=derived_id("capture", sid),
                    kind=TransferKind.POST,
                    amount=wanted,
                    currency=currency,
                    code="session_capture",
                    pending_id=hold.id,
                    reference=str(sid),
                ),
                now,
            )
        else:
            # Nothing to capture, the hold expired, or the card hold is gone at the processor:
            # what is owed is collected anew below, within the same maximum.
            await end_hold(ledger, hold, now)
    if captured_at_processor and await ledger.transfer(derived_id("capture", sid)) is None:
        # The processor captured, but the ledger's hold had ended meanwhile: book the money.
        await ledger.create_transfer(
            single("capture", "session_capture", clearing_id, settlement_id, wanted), now
        )

    captured = await ledger.transfer(derived_id("capture", sid))
    from_hold = captured.amount if captured else 0
    remaining = payable - from_hold

    # 2. The rest from the wallet's free balance (wallet sessions), once.
    from_wallet_t = await ledger.transfer(derived_id("shortfall-wallet", sid))
    if from_wallet_t is None and remaining > 0 and funding == "wallet":
        account = await ledger.account(wallet_id)
        take = min(remaining, max(account.available if account else 0, 0))
        if take > 0:
            from_wallet_t = await ledger.create_transfer(
                single("shortfall-wallet", "session_shortfall", wallet_id, settlement_id, take),
                now,
            )
    from_wallet = from_wallet_t.amount if from_wallet_t else 0
    remaining -= from_wallet

    # 3. The rest charged to the default card, never more than the driver authorised.
    from_card = 0
    card = await repo.default_method(user)
    if remaining > 0:
        op = await repo.operation(f"shortfall:{sid}")
        if op is None and card is not None and profile.processor_customer_id:
            call = await record_call(
                repo,
                f"shortfall:{sid}",
                "charge",
                sid,
                customer=profile.processor_customer_id,
                token=card.processor_token,
                amount=remaining,
                currency=currency,
                metadata={"session_id": str(sid)},
            )
            return Step(call=call)
        if op is not None and op.status == "pending":
            return Step(call=ProcessorCall.of(op))
        if op is not None and op.status == "failed" and op.outcome.get("declined"):
            await repo.record_decline(user, None, str(op.outcome["code"])[:60], now)
        if op is not None and op.status == "succeeded":
            from_card = int(op.outcome["amount"])
            await ledger.create_transfer(
                single(
                    "shortfall-card", "session_shortfall", clearing_id, settlement_id, from_card
                ),
                now,
            )
    debt = remaining - from_card
    if debt > 0:
        # Never dropped: the driver owes it, and the next top-up pays it first.
        await ledger.create_transfer(
            single("debt", "session_debt", receivable_id, settlement_id, debt), now
        )

    # 4. Revenue and VAT (locked last, briefly), the receipt, the event.
    await ledger.lock_accounts((revenue_id, vat_id))
    booked = [
        ("revenue", "operator_revenue", settlement_id, revenue_id, capped.payable_excl_vat),
        ("vat", "vat_collected", settlement_id, vat_id, capped.payable_vat),
    ]
    await post_moves(ledger, booked, cause=sid, currency=currency, reference=str(sid), now=now)
    charged = from_hold + from_wallet + from_card
    wallet_part = from_wallet + (from_hold if funding == "wallet" else 0)
    card_part = from_card + (from_hold if funding == "card" else 0)
    held_card = await repo.method(user, row.payment_method_id) if row.payment_method_id else None
    if capped.written_off > 0:
        await repo.insert_cost_overrun(
            row,
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
    # Numbered here, in the transaction that books the revenue: a rollback gives it back.
    invoice = await invoicing.issue_invoice(repo, row, issued_at=now)
    starts = [line.period_start for line in breakdown.lines]
    ends = [line.period_end for line in breakdown.lines]
    await repo.insert_receipt(
        row,
        **asdict(invoice),
        id=receipt_id,
        total_excl_vat=capped.payable_excl_vat,
        total_vat=capped.payable_vat,
        total_incl_vat=payable,
        charged=charged,
        wallet_part=wallet_part,
        card_part=card_part,
        authorised_max=capped.cap,
        claimed_total=capped.claimed,
        capped=capped.written_off,
        debt=debt,
        funding=funding,
        payment_method_label=payment_label(
            wallet_part=wallet_part,
            card_part=card_part,
            card=held_card or card,
            free=funding == "free",
        ),
        energy_wh=breakdown.energy_wh,
        started_at=min(starts) if starts else None,
        ended_at=max(ends) if ends else None,
        breakdown=breakdown.model_dump(mode="json"),
        balance_after=wallet.available,
        issued_at=now,
    )
    await repo.update_session(sid, status="billed")

    def money(amount: int) -> Money:
        return Money(amount_minor=amount, currency=currency)

    billed = SessionBilled(
        session_id=sid,
        user_id=user,
        receipt_id=receipt_id,
        charged=money(charged),
        funding=funding,
        wallet_charged=money(wallet_part),
        card_charged=money(card_part),
        capped=money(capped.written_off) if capped.written_off else None,
        balance_after=money(wallet.available),
        outstanding_debt=money(receivable.balance) if receivable.balance > 0 else None,
        billed_at=now,
    )
    # Rendered here, so the mail carrying it is queued from the event alone (~15 ms of CPU
    # with the organisation's revenue row locked; see docs/billing.md).
    invoice_event = await invoicing.invoice_issued(repo, sid)
    return Step(
        events=[billed, invoice_event],
        billed=True,
        user_id=user,
        currency=currency,
        funding=funding,
    )


async def collect(billing: Billing, unit: UnitOfWork, session_id: uuid.UUID) -> bool:
    """Bring a settling session to billed: short transactions around processor calls (no
    transaction is open during a call). Then an auto top-up if the wallet paid. True when
    this call billed it."""
    correlation = None
    cause = f"settle:{session_id}"
    for _ in range(4):  # at most: capture or cancel, a charge anew, then the posting
        async with unit() as session:
            repo = BillingRepository(session)
            row = await repo.session_row(session_id)
            correlation = row.correlation_id if row is not None else None
            step = await advance(billing, session, session_id)
            if step.events and row is not None:
                await _outbox.add(
                    session,
                    wrap_all(
                        step.events, correlation_id=correlation, causation_id=row.causation_id
                    ),
                )
            # Decided on each step, so only the last one (the one returned) can top up.
            top_up_after = (
                step.billed
                and step.funding == "wallet"
                and step.user_id is not None
                and await top_up.auto_top_up_may_act(repo, step.user_id, step.currency, cause)
            )
        if step.call is None:
            break
        await make_call(billing, unit, step.call)
    else:
        return False
    if top_up_after and step.user_id is not None:
        await top_up.auto_top_up(billing, unit, step.user_id, step.currency, cause, correlation)
    return step.billed


async def settle(
    billing: Billing,
    unit: UnitOfWork,
    cost: SessionCostCalculated,
    caused_by: Envelope | None = None,
) -> bool:
    """Record the cost and collect it (for callers without their own consumer transaction)."""
    async with unit() as session:
        await record_cost(billing, session, cost, caused_by)
    return await collect(billing, unit, cost.session_id)
