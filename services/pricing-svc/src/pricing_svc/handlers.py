"""Consumers' effects: decode → load → domain → save + outbox, in the inbox transaction
(`ConsumerSpec.transactional`: a fetch per transaction, or one event at a time on failure)."""

from __future__ import annotations

from plugpay_events import Envelope, utc_now
from plugpay_events.contracts.identity import StationRegistered
from plugpay_events.contracts.sessions import SessionCodeScanned, SessionCompleted
from plugpay_events.contracts.stations import (
    ConnectorStatusChanged,
    StationConnected,
    StationDisconnected,
    StationWentOffline,
)
from sqlalchemy.ext.asyncio import AsyncSession

from pricing_svc import service
from pricing_svc.repository import PricingRepository

IDENTITY_GROUP = "pricing-svc.identity"
SESSIONS_GROUP = "pricing-svc.sessions"
# The station directory: its own group over plugpay.identity and plugpay.stations, so a new
# deployment (or a reset of this group) builds it from the start of the log.
DIRECTORY_GROUP = "pricing-svc.directory"
_PRESENCE = (ConnectorStatusChanged, StationConnected, StationDisconnected, StationWentOffline)
# What each consumer acts on (``ConsumerSpec.transactional(handles=...)``): other events of its
# topics pass without a transaction. A branch added below needs its class here.
IDENTITY_EVENTS = (StationRegistered,)
SESSION_EVENTS = (SessionCodeScanned, SessionCompleted)
DIRECTORY_EVENTS = (StationRegistered, *_PRESENCE)


async def on_identity_event(session: AsyncSession, envelope: Envelope) -> None:
    """Stations (owner, connectors) as auth-svc registers them; other identity events pass."""
    event = envelope.event()
    if isinstance(event, StationRegistered):
        await service.register_station(PricingRepository(session), event)


async def on_session_event(session: AsyncSession, envelope: Envelope) -> None:
    """Price scanned sessions and cost completed ones; other session events pass."""
    event = envelope.event()
    store = PricingRepository(session)
    if isinstance(event, SessionCodeScanned):
        await service.price_session(store, envelope, event)
    elif isinstance(event, SessionCompleted):
        await service.cost_session(store, envelope, event, utc_now())


async def on_directory_event(session: AsyncSession, envelope: Envelope) -> None:
    """Locations (StationRegistered) and live availability (station-gateway's presence and
    connector status); other events pass."""
    event = envelope.event()
    store = PricingRepository(session)
    if isinstance(event, StationRegistered):
        await service.locate_station(store, event)
    elif isinstance(event, _PRESENCE):
        await service.station_presence(store, event)
