"""Review: a session the gateway held for review (``SessionFlagged``) is billed only its
plausible part until an operator of the station's organisation decides (``SessionReviewed``).

- ``flag`` (in the consumer's transaction): keep the session and its evidence as ``pending``;
  a session the gateway *corrected* by a fixed rule is kept as ``corrected`` — listed with its
  evidence so an operator can answer the driver, with nothing to decide.
  Operator revenue counts its receipt as pending, not as revenue, until the decision.
- ``decide`` (one request): ``approve`` an amount — the driver's total for the session, never
  above what they authorised before the start — or ``void`` (a total of 0). The difference to
  what was billed moves, exactly: more is taken from the wallet's free balance and the rest
  recorded as owed (no card is charged after the session), less is refunded the way it was paid
  (``refund.begin``; a card refund is a processor call the caller makes after the commit, and
  ``refund.finish`` posts). The receipt shows the new total and the decision.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from plugpay_events.bus.port import PoisonEvent
from plugpay_events.contracts.sessions import SessionCostCalculated, SessionFlagged, SessionReviewed
from plugpay_events.envelope import Envelope, Event
from plugpay_events.outbox import Outbox
from plugpay_events.types import Money
from plugpay_platform.errors import Refusal
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import (
    AccountKind,
    derived_id,
    review_adjustment,
)
from billing_svc.repository import BillingRepository, LedgerRepository
from billing_svc.tables import outbox_tables
from billing_svc.usecases import refund as refunds
from billing_svc.usecases.common import (
    Billing,
    authorised_max,
    post_moves,
    wrap_all,
)

_outbox = Outbox(outbox_tables)

Decision = Literal["approve", "void"]


async def flag(session: AsyncSession, event: SessionFlagged, caused_by: Envelope) -> list[Event]:
    """Keep a held session for review, or a corrected one for the record (a replay keeps the
    first)."""
    repo = BillingRepository(session)
    row = await repo.session_row(event.session_id)
    if row is None:
        raise PoisonEvent("flag for a session billing never authorised")
    await repo.insert_review(
        row,
        status="pending" if event.judgement.outcome == "held" else "corrected",
        judgement=event.judgement.model_dump(mode="json"),
        billed_energy_wh=event.billed_energy_wh,
        flagged_at=event.flagged_at,
        correlation_id=caused_by.correlation_id,
        flag_event_id=caused_by.event_id,
    )
    return []


def review_body(row: Row[Any]) -> dict[str, Any]:
    """A review as the API shows it (``row`` from ``BillingRepository.reviews``)."""

    def money(amount: int | None) -> dict[str, Any] | None:
        return None if amount is None else {"amount_minor": amount, "currency": row.currency}

    return {
        "session_id": str(row.session_id),
        "station_id": row.station_id,
        "status": row.status,
        "flagged_at": row.flagged_at.isoformat(),
        "judgement": row.judgement,
        "billed_energy_wh": row.billed_energy_wh,
        "billed_total": money(row.billed_total),
        "authorised_max": money(row.authorised_max),
        "approved_total": money(row.approved_total),
        "charged": money(row.charged),
        "refunded": money(row.refunded),
        "note": row.note,
        "reviewed_by": str(row.reviewed_by) if row.reviewed_by else None,
        "reviewed_at": row.reviewed_at.isoformat() if row.reviewed_at else None,
    }


def _vat_percent(cost: dict[str, Any] | None) -> Decimal:
    if not cost:
        return Decimal(0)
    lines = SessionCostCalculated.model_validate(cost).breakdown.lines
    return max((line.vat_percent for line in lines), default=Decimal(0))


async def decide(
    billing: Billing,
    session: AsyncSession,
    *,
    session_id: uuid.UUID,
    decision: Decision,
    amount: Money | None,
    note: str,
    reviewer: uuid.UUID,
    organisation_id: uuid.UUID | None,
    any_organisation: bool,
) -> refunds.RefundStep:
    """Decide a pending review (see the module's docstring); refusals carry a reason."""
    repo = BillingRepository(session)
    review = await repo.review(session_id)
    if review is None or (not any_organisation and review.organisation_id != organisation_id):
        # Another organisation's session answers as a missing one: no existence oracle.
        raise Refusal("not_found", "no session held for review", status_code=404)
    await repo.lock_profile(review.user_id)
    review = await repo.review(session_id, lock=True)
    assert review is not None
    if review.status == "corrected":
        raise Refusal(
            "review_not_held",
            "this session was corrected by rule and billed; there is nothing to decide",
            status_code=409,
        )
    if review.status != "pending":
        raise Refusal(
            "review_decided", f"this session was already {review.status}", status_code=409
        )
    if (decision == "approve") != (amount is not None):
        raise Refusal(
            "invalid_decision", "approve states an amount; void states none", status_code=422
        )
    if amount is not None and amount.currency != review.currency:
        raise Refusal("currency_mismatch", "the amount in the session's currency", status_code=422)
    receipt = await repo.receipt(session_id)
    row = await repo.session_row(session_id)
    if receipt is None or row is None:
        raise Refusal(
            "review_not_billed_yet",
            "the plausible part is still being billed; decide once its receipt exists",
            status_code=409,
        )
    target = amount.amount_minor if amount is not None else 0
    adjustment = review_adjustment(
        receipt.total_incl_vat,
        receipt.total_vat,
        target,
        authorised_max(row),
        _vat_percent(row.cost),
    )
    if isinstance(adjustment, str):
        raise Refusal(
            adjustment,
            f"at most the {authorised_max(row)} minor units the driver authorised",
            status_code=422,
        )
    if adjustment.refund > receipt.charged - await repo.refunded(session_id, with_pending=True):
        raise Refusal(
            "review_exceeds_refundable",
            "less than the decision would give back was collected (the rest is owed)",
            status_code=409,
        )
    now = billing.clock()
    if adjustment.charge > 0:
        await _charge(
            LedgerRepository(session),
            repo,
            review,
            receipt,
            adjustment.charge,
            adjustment.charge_vat,
            now,
        )
    await repo.update_review(
        session_id,
        status="approved" if decision == "approve" else "voided",
        approved_total=target,
        billed_before=adjustment.billed,
        charged=adjustment.charge,
        refunded=adjustment.refund,
        note=note,
        reviewed_by=reviewer,
        reviewed_at=now,
    )
    reviewed = SessionReviewed(
        session_id=session_id,
        user_id=review.user_id,
        organisation_id=review.organisation_id,
        decision="approved" if decision == "approve" else "voided",
        approved_total=Money(amount_minor=target, currency=review.currency),
        billed_before=Money(amount_minor=adjustment.billed, currency=review.currency),
        charged=Money(amount_minor=adjustment.charge, currency=review.currency),
        refunded=Money(amount_minor=adjustment.refund, currency=review.currency),
        note=note,
        reviewed_by=reviewer,
        reviewed_at=now,
    )
    # The decision follows from the flag: its correlation, the flag as its cause.
    await _outbox.add(
        session,
        wrap_all(
            [reviewed],
            correlation_id=review.correlation_id,
            causation_id=review.flag_event_id,
        ),
    )
    if adjustment.refund > 0:
        step = await refunds.begin(
            billing,
            session,
            refund_id=derived_id("review-refund", session_id),
            session_id=session_id,
            amount=adjustment.refund,
            reason="review: " + ("voided" if decision == "void" else "approved less"),
            issued_by=reviewer,
            organisation_id=review.organisation_id,
            any_organisation=True,
        )
        if step.call is not None:
            return refunds.RefundStep(call=step.call)
        return refunds.RefundStep(body=await body(session, session_id), events=step.events)
    return refunds.RefundStep(body=await body(session, session_id))


async def finish(
    billing: Billing, session: AsyncSession, session_id: uuid.UUID
) -> refunds.RefundStep:
    """Post the card refund of a decision once the processor answered."""
    step = await refunds.finish(billing, session, derived_id("review-refund", session_id))
    if step.call is not None:
        return refunds.RefundStep(call=step.call)
    return refunds.RefundStep(body=await body(session, session_id), events=step.events)


async def body(session: AsyncSession, session_id: uuid.UUID) -> dict[str, Any]:
    [row] = await BillingRepository(session).reviews(None, None, 1, session_id=session_id)
    return review_body(row)


async def _charge(
    ledger: LedgerRepository,
    repo: BillingRepository,
    review: Row[Any],
    receipt: Row[Any],
    amount: int,
    vat: int,
    now: datetime,
) -> None:
    """Collect an approved amount above what was billed: the wallet's free balance first, the
    rest owed; revenue and VAT credited."""
    currency, user = review.currency, review.user_id
    sid, org = review.session_id, review.organisation_id
    wallet_id, settlement_id, receivable_id, revenue_id, vat_id = await ledger.open_all(
        (AccountKind.WALLET, currency, user),
        (AccountKind.SESSION_SETTLEMENT, currency, sid),
        (AccountKind.RECEIVABLE, currency, user),
        (AccountKind.REVENUE, currency, org),
        (AccountKind.VAT_PAYABLE, currency, org),
    )
    await ledger.lock_accounts((wallet_id, settlement_id, receivable_id))
    wallet = await ledger.account(wallet_id)
    from_wallet = min(amount, max(wallet.available if wallet else 0, 0))
    owed = amount - from_wallet
    await ledger.lock_accounts((revenue_id, vat_id))
    moves = [
        ("review-wallet", "review_charge", wallet_id, settlement_id, from_wallet),
        ("review-debt", "session_debt", receivable_id, settlement_id, owed),
        ("review-revenue", "operator_revenue", settlement_id, revenue_id, amount - vat),
        ("review-vat", "vat_collected", settlement_id, vat_id, vat),
    ]
    await post_moves(ledger, moves, cause=sid, currency=currency, reference=str(sid), now=now)
    await repo.update_receipt(
        sid,
        total_incl_vat=receipt.total_incl_vat + amount,
        total_excl_vat=receipt.total_excl_vat + amount - vat,
        total_vat=receipt.total_vat + vat,
        charged=receipt.charged + from_wallet,
        wallet_part=(receipt.wallet_part or 0) + from_wallet,
        debt=receipt.debt + owed,
    )
