"""The session store as a projection of the log: one code path for the live consumer and for a
rebuild from offset 0, so both reach the same rows.

Live: each event in its own transaction with its inbox claim (idempotent), after waiting out a
rebuild. Rebuild: the same ``SessionStoreProjector``, but the sessions of a batch are folded in
memory and written once per batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from plugpay_events.bus.port import Delivery, Handler
from plugpay_events.contracts.identity import StationRegistered
from plugpay_events.contracts.sessions import MeterValuesReported
from plugpay_events.contracts.stations import (
    StationConnected,
    StationDisconnected,
    StationWentOffline,
)
from plugpay_events.envelope import Envelope, Event
from plugpay_events.outbox import OutboxTables, claim_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from session_svc import repository
from session_svc.domain import (
    ChargingSession,
    SessionStatus,
    apply,
    mutate,
    start_deadline,
)

CONSUMER = "session-svc.store"
CODE_EXPIRY = "code_expiry"
START_TIMEOUT = "start_timeout"

Db = AsyncSession | AsyncConnection


SESSION_EVENT_TYPES: frozenset[str] = frozenset(
    t.type for t in mutate.registry if isinstance(t, type) and issubclass(t, Event)
)


def is_session_event(event: Event) -> bool:
    """Events of the charging-session aggregate (the meter has its own summary)."""
    return event.type in SESSION_EVENT_TYPES


class SessionStoreProjector:
    """Applies one event to the store; subclasses decide where session states live meanwhile."""

    def __init__(
        self, *, code_tolerance: timedelta, clock_skew: timedelta, start_timeout: timedelta | None
    ) -> None:
        self.code_tolerance = code_tolerance
        self.clock_skew = clock_skew
        self.start_timeout = start_timeout

    def timers_for(self, state: ChargingSession) -> list[tuple[str, uuid.UUID, datetime]]:
        """The timers a session in this state needs (derived, so a rebuild recreates them)."""
        if state.status is SessionStatus.CODE_ISSUED:
            assert state.code_expires_at and state.session_started_at
            # The moment the verifier stops accepting the code, whichever limit comes first.
            due = min(state.code_expires_at, state.session_started_at + self.code_tolerance)
            return [(CODE_EXPIRY, state.session_id, due + self.clock_skew)]
        deadline = start_deadline(state, self.start_timeout)
        if deadline is not None:
            return [(START_TIMEOUT, state.session_id, deadline)]
        return []

    async def load(self, db: Db, session_id: uuid.UUID) -> ChargingSession:
        state = await repository.load_session(db, session_id, for_update=True)
        return state or ChargingSession(session_id=session_id)

    async def store(self, db: Db, before: ChargingSession, after: ChargingSession) -> None:
        await repository.save_sessions(db, [after])
        if before.status != after.status or before.version == 0:
            await repository.replace_timers(db, [after.session_id], self.timers_for(after))
        await self.notify(db, after.session_id)

    async def notify(self, db: Db, session_id: uuid.UUID) -> None:
        await repository.notify_session_changed(db, session_id)

    async def project(self, db: Db, envelope: Envelope) -> None:
        event = envelope.event()
        if isinstance(event, MeterValuesReported):
            last = max(event.samples, key=lambda s: s.sampled_at)
            await repository.record_meter_reading(
                db,
                event.session_id,
                repository.MeterReading(
                    event.transaction_id,
                    last.sampled_at,
                    last.energy_wh,
                    last.power_w,
                    event.soc_percent,
                ),
            )
            await self.notify(db, event.session_id)
        elif isinstance(event, StationConnected):
            await repository.record_presence(
                db, event.station_id, online=True, at=event.connected_at
            )
        elif isinstance(event, StationDisconnected):
            await repository.record_presence(
                db, event.station_id, online=False, at=event.disconnected_at
            )
        elif isinstance(event, StationWentOffline):
            await repository.record_presence(
                db, event.station_id, online=False, at=event.last_seen_at
            )
        elif isinstance(event, StationRegistered):
            await repository.record_station(
                db, event.station_id, organisation_id=event.organisation_id, name=event.name
            )
        elif is_session_event(event):
            session_id = uuid.UUID(envelope.aggregate_id)
            before = await self.load(db, session_id)
            after = apply(before, event, envelope.event_id)
            if after is before:
                return
            if after.status is None:
                return  # an event for a session whose code was never issued: skipped
            if after.status is SessionStatus.SCANNED and after.user_id is not None:
                await repository.record_scan_claim(db, session_id, after.user_id)
            await self.store(db, before, after)


def live_handler(
    session_factory: Callable[[], AsyncSession],
    tables: OutboxTables,
    projector: SessionStoreProjector,
) -> Handler:
    """The consumer of sessions, meter, stations and identity: inbox claim + effect, one
    transaction, after any running rebuild."""

    async def handle(delivery: Delivery) -> None:
        async with session_factory() as db, db.begin():
            await repository.lock_store_shared(db)
            if not await claim_event(db, tables, CONSUMER, delivery.envelope.event_id):
                return
            await projector.project(db, delivery.envelope)

    return handle


class BatchingProjector(SessionStoreProjector):
    """For rebuilds: session states stay in memory until ``write`` at the end of a batch."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.dirty: dict[uuid.UUID, ChargingSession] = {}
        self.cache: dict[uuid.UUID, ChargingSession] = {}
        self.touched: set[uuid.UUID] = set()

    async def load(self, db: Db, session_id: uuid.UUID) -> ChargingSession:
        if session_id in self.cache:
            return self.cache[session_id]
        return await super().load(db, session_id)

    async def preload(self, db: Db, session_ids: set[uuid.UUID]) -> None:
        """Read the batch's sessions in one query; the ones not stored yet start empty."""
        missing = session_ids - self.cache.keys()
        found = await repository.load_sessions(db, missing) if missing else {}
        for session_id in missing:
            self.cache[session_id] = found.get(session_id) or ChargingSession(session_id=session_id)

    async def notify(self, db: Db, session_id: uuid.UUID) -> None:
        self.touched.add(session_id)

    async def store(self, db: Db, before: ChargingSession, after: ChargingSession) -> None:
        self.cache[after.session_id] = after
        self.dirty[after.session_id] = after
        self.touched.add(after.session_id)

    async def write(self, db: Db) -> None:
        states = list(self.dirty.values())
        await repository.save_sessions(db, states)
        await repository.replace_timers(
            db, [s.session_id for s in states], [t for s in states for t in self.timers_for(s)]
        )
        self.dirty.clear()
        # Open streams re-read once per batch, not once per event.
        for session_id in self.touched:
            await repository.notify_session_changed(db, session_id)
        self.touched.clear()
        # Events of a session cluster in time; a bounded cache keeps memory flat on big logs.
        if len(self.cache) > 50_000:
            self.cache.clear()
