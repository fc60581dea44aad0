"""Recovery: finish what a crash or a time-out left between a processor call and its posting.

Run by the sweeper. Pending processor calls are made again with their idempotency key (the
processor answers a repeated key with its first answer, so nothing is charged twice), then the
sessions, top-ups and refunds waiting on them are posted.
"""

from __future__ import annotations

from datetime import datetime

from plugpay_events.outbox import Outbox

from billing_svc.repository import BillingRepository
from billing_svc.tables import outbox_tables
from billing_svc.usecases import refund, settle, top_up
from billing_svc.usecases.common import Billing, UnitOfWork, make_call, pending_calls, wrap_all

_outbox = Outbox(outbox_tables)


async def recover(billing: Billing, unit: UnitOfWork, older_than: datetime, limit: int = 50) -> int:
    """Finish work untouched since ``older_than``; how many items were taken up."""
    done = 0
    async for call in pending_calls(unit, older_than, limit):
        await make_call(billing, unit, call)
        done += 1
    async with unit() as session:
        repo = BillingRepository(session)
        sessions = await repo.settling_sessions(older_than, limit)
        topups = await repo.pending_topups(older_than, limit)
        refunds = await repo.pending_refunds(older_than, limit)
    for session_id in sessions:
        await settle.collect(billing, unit, session_id)
    for topup_id in topups:
        await top_up.finish_in(billing, unit, topup_id)
    for refund_id in refunds:
        async with unit() as session:
            step = await refund.finish(billing, session, refund_id)
            await _outbox.add(session, wrap_all(step.events))
    return done + len(sessions) + len(topups) + len(refunds)
