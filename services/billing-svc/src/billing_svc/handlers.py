"""Consumers: decode -> use case -> ledger + outbox, one transaction per event (inbox claimed).

Group ``billing-svc.sessions``: SessionPriced (authorise; a due auto top-up first),
SessionCostCalculated (record the cost, then collect it), SessionAbandoned / SessionFailed
(void the hold, then cancel a card hold), SessionFlagged (keep it for an operator's review).
Group ``billing-svc.identity``: open the wallet of a new driver (and keep the address its
invoices name); organisations and stations, for the seller and station on invoices. Other
event types on these topics are ignored. Processor calls happen before or after the consumer's
transaction, never inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from plugpay_events.bus.port import Delivery, Handler
from plugpay_events.contracts.identity import (
    OrganisationCreated,
    StationRegistered,
    UserRegistered,
    UserVerified,
)
from plugpay_events.contracts.sessions import (
    SessionAbandoned,
    SessionCostCalculated,
    SessionFailed,
    SessionFlagged,
    SessionPriced,
)
from plugpay_events.envelope import Envelope
from plugpay_events.outbox import transactional_handler
from plugpay_events.topics import IDENTITY, SESSIONS
from plugpay_platform.database import Database
from plugpay_platform.runtime import ConsumerSpec
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.repository import BillingRepository
from billing_svc.tables import outbox_tables
from billing_svc.usecases import authorise, checkout, review, settle, top_up
from billing_svc.usecases.common import Billing, make_pending_calls, wrap_all

SESSIONS_GROUP = "billing-svc.sessions"
log = logging.getLogger(__name__)
IDENTITY_GROUP = "billing-svc.identity"
# What each consumer acts on (``transactional_handler``'s ``handles``): other events of its
# topic pass without a transaction. A branch added below needs its class here.
SESSION_EVENTS = (
    SessionPriced,
    SessionCostCalculated,
    SessionAbandoned,
    SessionFailed,
    SessionFlagged,
)
IDENTITY_EVENTS = (UserRegistered, UserVerified, OrganisationCreated, StationRegistered)


def session_handler(billing: Billing, database: Database) -> Handler:
    unit = database.write

    async def effect(session: AsyncSession, envelope: Envelope) -> Sequence[Envelope]:
        event = envelope.event()
        if isinstance(event, SessionPriced):
            emitted = await authorise.authorize(billing, session, event)
        elif isinstance(event, SessionCostCalculated):
            emitted = await settle.record_cost(billing, session, event, envelope)
        elif isinstance(event, SessionAbandoned | SessionFailed):
            emitted, _ = await authorise.release(billing, session, event.session_id)
        elif isinstance(event, SessionFlagged):
            emitted = await review.flag(session, event, envelope)
        else:
            return []
        return wrap_all(emitted, caused_by=envelope)

    in_transaction = transactional_handler(
        database.sessions, outbox_tables, SESSIONS_GROUP, effect, SESSION_EVENTS
    )

    async def handle(delivery: Delivery) -> None:
        envelope = delivery.envelope
        event = envelope.event()
        around = authorise.NOTHING_AROUND
        if isinstance(event, SessionPriced) and not event.free_of_charge:
            async with database.read() as session:
                around = await authorise.around_authorising(session, event)
            if around.auto_top_up_cause is not None:
                # Top up first when the balance is under the driver's minimum, then decide.
                try:
                    await top_up.auto_top_up(
                        billing,
                        unit,
                        event.user_id,
                        event.tariff.currency,
                        around.auto_top_up_cause,
                        envelope.correlation_id,
                    )
                except Exception:
                    # Decided without it; the sweeper finishes the journalled top-up.
                    log.exception("auto top-up before %s left to the sweeper", envelope.type)
        await in_transaction(delivery)
        try:
            if isinstance(event, SessionCostCalculated):
                await settle.collect(billing, unit, event.session_id)
            elif isinstance(event, SessionAbandoned | SessionFailed):
                await make_pending_calls(billing, unit, event.session_id)
            elif isinstance(event, SessionPriced) and around.cancel_checkout_after:
                # a guest's checkout hold this session could not use is cancelled now
                await make_pending_calls(billing, unit, checkout.cancel_key(event.user_id))
        except Exception:
            # The event's effect is committed and the processor work journalled: the sweeper
            # finishes it, so a processor outage does not stall this partition.
            log.exception("processor work after %s left to the sweeper", envelope.type)

    return handle


def identity_effect() -> Callable[[AsyncSession, Envelope], Awaitable[Sequence[Envelope]]]:
    async def effect(session: AsyncSession, envelope: Envelope) -> Sequence[Envelope]:
        event = envelope.event()
        repo = BillingRepository(session)
        if isinstance(event, UserRegistered) and "driver" in event.roles:
            await repo.ensure_profile(event.user_id)
            if event.email:
                await repo.learn_email(event.user_id, event.email)
        elif isinstance(event, UserVerified):
            await repo.mark_verified(event.user_id)
        elif isinstance(event, OrganisationCreated):
            await repo.learn_organisation(event.organisation_id, event.name)
        elif isinstance(event, StationRegistered):
            await repo.learn_station(
                event.station_id, event.organisation_id, event.name, event.address
            )
        return []

    return effect


def consumers(billing: Billing, database: Database) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(SESSIONS_GROUP, [SESSIONS], session_handler(billing, database)),
        ConsumerSpec(
            IDENTITY_GROUP,
            [IDENTITY],
            transactional_handler(
                database.sessions, outbox_tables, IDENTITY_GROUP, identity_effect(), IDENTITY_EVENTS
            ),
        ),
    ]
