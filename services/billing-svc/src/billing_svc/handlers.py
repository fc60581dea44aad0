"""Consumers: decode -> use case -> ledger + outbox, one transaction per event (inbox claimed).

Group ``billing-svc.sessions``: SessionPriced (authorise), SessionCostCalculated (settle),
SessionAbandoned / SessionFailed (void the hold). Group ``billing-svc.identity``: open the
wallet of a new driver. Other event types on these topics are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plugpay_events.contracts.identity import UserRegistered, UserVerified
from plugpay_events.contracts.sessions import (
    SessionAbandoned,
    SessionCostCalculated,
    SessionFailed,
    SessionPriced,
)
from plugpay_events.envelope import Envelope
from plugpay_events.outbox import transactional_handler
from plugpay_events.topics import IDENTITY, SESSIONS
from plugpay_platform.runtime import ConsumerSpec
from sqlalchemy.ext.asyncio import AsyncSession

from billing_svc.repository import BillingRepository
from billing_svc.service import BillingService, wrap_all
from billing_svc.tables import outbox_tables

SESSIONS_GROUP = "billing-svc.sessions"
IDENTITY_GROUP = "billing-svc.identity"


def session_effect(service: BillingService):  # type: ignore[no-untyped-def]
    async def effect(session: AsyncSession, envelope: Envelope) -> Sequence[Envelope]:
        event = envelope.event()
        if isinstance(event, SessionPriced):
            emitted = await service.authorize(session, event)
        elif isinstance(event, SessionCostCalculated):
            emitted = await service.settle(session, event)
        elif isinstance(event, SessionAbandoned | SessionFailed):
            emitted = await service.release(session, event.session_id)
        else:
            return []
        return wrap_all(emitted, caused_by=envelope)

    return effect


def identity_effect(service: BillingService):  # type: ignore[no-untyped-def]
    async def effect(session: AsyncSession, envelope: Envelope) -> Sequence[Envelope]:
        event = envelope.event()
        if isinstance(event, UserRegistered) and "driver" in event.roles:
            await BillingRepository(session).ensure_profile(event.user_id)
        elif isinstance(event, UserVerified):
            await BillingRepository(session).mark_verified(event.user_id)
        return []

    return effect


def consumers(
    service: BillingService, session_factory: Callable[[], AsyncSession]
) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            SESSIONS_GROUP,
            [SESSIONS],
            transactional_handler(
                session_factory, outbox_tables, SESSIONS_GROUP, session_effect(service)
            ),
        ),
        ConsumerSpec(
            IDENTITY_GROUP,
            [IDENTITY],
            transactional_handler(
                session_factory, outbox_tables, IDENTITY_GROUP, identity_effect(service)
            ),
        ),
    ]
