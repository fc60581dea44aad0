"""Refund: give back part of what a session charged, to the wallet or to the card.

A wallet refund is one transaction. A card refund is split around the processor call: ``begin``
reserves the amount (a ``pending`` refund counts against what is still refundable) and records
the call; after the commit the caller makes it; ``finish`` posts the reversal, or marks the
refund failed. Revenue and VAT rows are locked only in ``finish``'s short transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plugpay_events.contracts.billing import RefundIssued
from plugpay_events.envelope import Event
from plugpay_events.types import Money
from plugpay_platform.errors import Refusal
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.domain import AccountKind
from billing_svc.receipts import money_text
from billing_svc.repository import BillingRepository, LedgerRepository
from billing_svc.usecases import invoicing
from billing_svc.usecases.common import Billing, ProcessorCall, post_moves, record_call


@dataclass
class RefundStep:
    """``call`` to make before ``finish``; or the answer (``body`` and its events, or the
    ``refusal`` of a refund the processor refused, to commit as such). A review's decision,
    which may refund, answers with it too."""

    call: ProcessorCall | None = None
    body: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)
    refusal: Refusal | None = None


def _body(row: Row[Any]) -> dict[str, Any]:
    return {
        "refund_id": str(row.id),
        "session_id": str(row.session_id),
        "amount": {"amount_minor": row.amount, "currency": row.currency},
        "destination": row.destination,
        "reason": row.reason,
        "issued_at": row.created_at.isoformat(),
        "credit_note_number": row.credit_note_number,
    }


async def begin(
    billing: Billing,
    session: AsyncSession,
    *,
    refund_id: uuid.UUID,
    session_id: uuid.UUID,
    amount: int,
    reason: str,
    issued_by: uuid.UUID,
    organisation_id: uuid.UUID | None,
    any_organisation: bool,
) -> RefundStep:
    repo = BillingRepository(session)
    receipt = await repo.receipt(session_id)
    if receipt is None or (not any_organisation and receipt.organisation_id != organisation_id):
        # Another organisation's session answers as a missing one: no existence oracle.
        raise Refusal("not_found", "no receipt for this session", status_code=404)
    await repo.lock_profile(receipt.user_id)
    existing = await repo.refund_row(refund_id)
    if existing is not None:
        if existing.status == "pending":
            op = await repo.operation(f"refund:{refund_id}")
            assert op is not None
            return RefundStep(call=ProcessorCall.of(op))
        return await finish(billing, session, refund_id)
    refundable = receipt.charged - await repo.refunded(session_id, with_pending=True)
    if amount <= 0 or amount > refundable:
        raise Refusal(
            "refund_exceeds_charged",
            f"at most {money_text(max(refundable, 0), receipt.currency)} can still be refunded",
            status_code=422,
        )
    row = await repo.session_row(session_id)
    assert row is not None
    now = billing.clock()
    destination = "wallet" if receipt.funding != "card" else "card"
    await repo.insert_refund(
        receipt,
        id=refund_id,
        amount=amount,
        reason=reason,
        issued_by=issued_by,
        destination=destination,
        status="pending",
        created_at=now,
    )
    if destination == "card":
        call = await record_call(
            repo,
            f"refund:{refund_id}",
            "refund",
            refund_id,
            intent_id=row.payment_intent_id,
            amount=amount,
        )
        return RefundStep(call=call)
    return await finish(billing, session, refund_id)


async def finish(billing: Billing, session: AsyncSession, refund_id: uuid.UUID) -> RefundStep:
    """Post a refund: revenue and VAT reversed pro rata, the money back to the wallet or the
    card's clearing account. A card refund the processor refused is marked failed."""
    repo, ledger = BillingRepository(session), LedgerRepository(session)
    row = await repo.refund_row(refund_id)
    assert row is not None
    await repo.lock_profile(row.user_id)
    row = await repo.refund_row(refund_id)
    assert row is not None
    if row.status == "done":
        return RefundStep(body=_body(row))
    op = await repo.operation(f"refund:{refund_id}") if row.destination == "card" else None
    if op is not None and op.status == "pending":
        return RefundStep(call=ProcessorCall.of(op))
    if row.status == "failed" or (op is not None and op.status == "failed"):
        await repo.update_refund(refund_id, status="failed")
        message = op.outcome["message"] if op is not None else "the refund failed"
        return RefundStep(refusal=Refusal("refund_failed", message, status_code=409))
    receipt = await repo.receipt(row.session_id)
    assert receipt is not None
    await _post(ledger, row, receipt, billing.clock())
    # Numbered with the reversal (revenue and VAT are locked): a failed refund takes none.
    number = await invoicing.credit_note_number(
        repo, row.organisation_id, receipt.time_zone, billing.clock()
    )
    await repo.update_refund(refund_id, status="done", credit_note_number=number)
    row = await repo.refund_row(refund_id)
    assert row is not None
    return RefundStep(
        body=_body(row),
        events=[
            RefundIssued(
                user_id=row.user_id,
                refund_id=refund_id,
                session_id=row.session_id,
                amount=Money(amount_minor=row.amount, currency=row.currency),
                reason=row.reason,
                issued_by=row.issued_by,
                issued_at=row.created_at,
            ),
            await invoicing.credit_note_issued(repo, refund_id),
        ],
    )


async def _post(ledger: LedgerRepository, row: Row[Any], receipt: Row[Any], now: datetime) -> None:
    currency, user, org, sid = row.currency, row.user_id, row.organisation_id, row.session_id
    amount = row.amount
    # Reverse revenue and VAT in the proportion they were collected.
    vat_part = amount * receipt.total_vat // receipt.total_incl_vat if receipt.total_incl_vat else 0
    settlement_id, wallet_id, clearing_id, revenue_id, vat_id = await ledger.open_all(
        (AccountKind.SESSION_SETTLEMENT, currency, sid),
        (AccountKind.WALLET, currency, user),
        (AccountKind.PROCESSOR_CLEARING, currency, user),
        (AccountKind.REVENUE, currency, org),
        (AccountKind.VAT_PAYABLE, currency, org),
    )
    await ledger.lock_accounts((wallet_id, settlement_id, clearing_id))
    await ledger.lock_accounts((revenue_id, vat_id))
    back_to = wallet_id if row.destination == "wallet" else clearing_id
    moves = [
        ("refund-revenue", "refund", revenue_id, settlement_id, amount - vat_part),
        ("refund-vat", "refund", vat_id, settlement_id, vat_part),
        ("refund-out", "refund", settlement_id, back_to, amount),
    ]
    await post_moves(ledger, moves, cause=row.id, currency=currency, reference=str(sid), now=now)
