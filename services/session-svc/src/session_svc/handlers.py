"""The session store as a projection of the log, live and rebuilt from offset 0, reaching the
same rows (tests/integration/test_store_fold.py and test_rebuild_kafka.py compare them).

Live: the consumer hands over each partition's fetched records as one batch, projected in one
transaction with their inbox claims (idempotent), after waiting out a rebuild: ``project_batch``
folds a batch's sessions in memory and writes each once. A batch that fails goes through
``live_handler`` one event per transaction, so only a poison event is dead-lettered.

Rebuild: ``StoreFold`` applies the same rules as ``SessionStoreProjector.project`` to the whole
log in memory (the pure aggregate folds each session), and the rebuild writes every row once per
batch of 100,000 events with COPY (``session_svc.rebuild``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plugpay_events.bus.port import BatchHandler, Delivery, Handler
from plugpay_events.contracts.identity import StationRegistered
from plugpay_events.contracts.sessions import MeterValuesReported
from plugpay_events.contracts.stations import (
    StationConnected,
    StationDisconnected,
    StationWentOffline,
)
from plugpay_events.envelope import Envelope, Event
from plugpay_events.outbox import OutboxTables, claim_event, claim_events
from plugpay_events.registry import EVENT_TYPES
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


_STORED_OTHERWISE = (
    MeterValuesReported,
    StationConnected,
    StationDisconnected,
    StationWentOffline,
    StationRegistered,
)
# The other event types ``project`` stores something of (subclasses included).
_OTHER_STORE_EVENT_TYPES: frozenset[str] = frozenset(
    name for name, cls in EVENT_TYPES.items() if issubclass(cls, _STORED_OTHERWISE)
)


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
        # StoreFold.apply is the same projection in memory: a change here belongs there too.
        event = envelope.event()
        if isinstance(event, MeterValuesReported):
            await repository.record_meter_reading(db, event.session_id, meter_reading(event))
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


def meter_reading(event: MeterValuesReported) -> repository.MeterReading:
    """What the store keeps of a meter report: its newest sample."""
    last = max(event.samples, key=lambda s: s.sampled_at)
    return repository.MeterReading(
        event.transaction_id, last.sampled_at, last.energy_wh, last.power_w, event.soc_percent
    )


@dataclass
class StoreChanges:
    """Rows to write since the last ``StoreFold.take``: each row once, in its final form."""

    event_ids: list[uuid.UUID] = field(default_factory=list)
    sessions: list[ChargingSession] = field(default_factory=list)
    # Of ``sessions``, the ones written by an earlier take (their rows and timers exist).
    rewritten: set[uuid.UUID] = field(default_factory=set)
    timers: list[tuple[str, uuid.UUID, datetime]] = field(default_factory=list)
    scan_claims: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    meter: list[tuple[uuid.UUID, repository.MeterReading]] = field(default_factory=list)
    meter_rewritten: set[uuid.UUID] = field(default_factory=set)
    presence: list[tuple[str, bool, datetime]] = field(default_factory=list)
    registrations: list[tuple[str, uuid.UUID, str]] = field(default_factory=list)
    touched: set[uuid.UUID] = field(default_factory=set)


class StoreFold:
    """``SessionStoreProjector.project`` over a whole log, in memory, for a rebuild: every
    event once (by event id, as the inbox does), each session folded with the pure aggregate,
    then ``take`` gives each changed row once. The store it describes is the one the
    one-event-at-a-time path writes from the same events in the same order (the rebuild test
    compares them row for row). Keeps every session of the log in memory."""

    def __init__(self, projector: SessionStoreProjector) -> None:
        self.projector = projector
        self.seen: set[int] = set()
        self.sessions: dict[uuid.UUID, ChargingSession] = {}
        self._ids: dict[str, uuid.UUID] = {}
        self.meter: dict[uuid.UUID, repository.MeterReading] = {}
        self.claimed: set[uuid.UUID] = set()
        self.written: set[uuid.UUID] = set()
        self.meter_written: set[uuid.UUID] = set()
        self._changes = StoreChanges()
        self._sessions_changed: set[uuid.UUID] = set()
        self._meter_changed: set[uuid.UUID] = set()
        self._presence: dict[str, tuple[bool, datetime]] = {}
        self._registrations: dict[str, tuple[uuid.UUID, str]] = {}

    def apply(self, event_id: uuid.UUID, aggregate_id: str, event: Event) -> None:
        if event_id.int in self.seen:  # ints: UUID's own hash is a Python-level call
            return  # a redelivery: the inbox would have skipped it
        self.seen.add(event_id.int)
        changes = self._changes
        changes.event_ids.append(event_id)
        if event.type in SESSION_EVENT_TYPES:
            self._apply_to_session(event_id, aggregate_id, event)
        elif event.type not in _OTHER_STORE_EVENT_TYPES:
            return  # e.g. connector statuses: handled (inbox), nothing stored
        elif isinstance(event, MeterValuesReported):
            reading = meter_reading(event)
            current = self.meter.get(event.session_id)
            # Only a strictly newer sample replaces the kept one (record_meter_reading's rule).
            if current is None or current.sampled_at < reading.sampled_at:
                self.meter[event.session_id] = reading
                self._meter_changed.add(event.session_id)
            changes.touched.add(event.session_id)
        elif isinstance(event, StationConnected):
            self._presence[event.station_id] = (True, event.connected_at)
        elif isinstance(event, StationDisconnected):
            self._presence[event.station_id] = (False, event.disconnected_at)
        elif isinstance(event, StationWentOffline):
            self._presence[event.station_id] = (False, event.last_seen_at)
        elif isinstance(event, StationRegistered):
            self._registrations[event.station_id] = (event.organisation_id, event.name)

    def _apply_to_session(self, event_id: uuid.UUID, aggregate_id: str, event: Event) -> None:
        changes = self._changes
        session_id = self._ids.get(aggregate_id)
        if session_id is None:
            session_id = self._ids[aggregate_id] = uuid.UUID(aggregate_id)
        before = self.sessions.get(session_id) or ChargingSession(session_id=session_id)
        after = apply(before, event, event_id)
        if after is before or after.status is None:
            return  # unchanged, or a session whose code was never issued: skipped
        if (
            after.status is SessionStatus.SCANNED
            and after.user_id is not None
            and session_id not in self.claimed
        ):
            self.claimed.add(session_id)
            changes.scan_claims.append((session_id, after.user_id))
        self.sessions[session_id] = after
        self._sessions_changed.add(session_id)
        changes.touched.add(session_id)

    def take(self) -> StoreChanges:
        """What changed since the last ``take``, each row in its state now."""
        changes, self._changes = self._changes, StoreChanges()
        states = [self.sessions[s] for s in self._sessions_changed]
        changes.sessions = states
        changes.rewritten = self._sessions_changed & self.written
        changes.timers = [t for s in states for t in self.projector.timers_for(s)]
        self.written |= self._sessions_changed
        self._sessions_changed = set()
        changes.meter = [(s, self.meter[s]) for s in self._meter_changed]
        changes.meter_rewritten = self._meter_changed & self.meter_written
        self.meter_written |= self._meter_changed
        self._meter_changed = set()
        changes.presence = [(k, online, at) for k, (online, at) in self._presence.items()]
        changes.registrations = [(k, org, name) for k, (org, name) in self._registrations.items()]
        self._presence, self._registrations = {}, {}
        return changes


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

    def timers_to_replace(self, states: list[ChargingSession]) -> list[ChargingSession]:
        """The written sessions whose timers are derived again (a rebuild: all of them)."""
        return states

    async def write(self, db: Db) -> None:
        states = list(self.dirty.values())
        await repository.save_sessions(db, states)
        renew = self.timers_to_replace(states)
        await repository.replace_timers(
            db, [s.session_id for s in renew], [t for s in renew for t in self.timers_for(s)]
        )
        self.dirty.clear()
        # Open streams re-read once per batch, not once per event.
        for session_id in self.touched:
            await repository.notify_session_changed(db, session_id)
        self.touched.clear()
        # Events of a session cluster in time; a bounded cache keeps memory flat on big logs.
        if len(self.cache) > 50_000:
            self.cache.clear()


class LiveBatchProjector(BatchingProjector):
    """One live consumer batch: its sessions read once (row-locked) and written once, and
    timers renewed only where the status changed, exactly as the one-event path does (a timer
    that already fired and was deleted is not brought back by a repeated event)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.first: dict[uuid.UUID, ChargingSession] = {}

    async def preload(self, db: Db, session_ids: set[uuid.UUID]) -> None:
        found = await repository.load_sessions(db, session_ids, for_update=True)
        for session_id in session_ids:
            state = found.get(session_id) or ChargingSession(session_id=session_id)
            self.cache[session_id] = self.first[session_id] = state

    def timers_to_replace(self, states: list[ChargingSession]) -> list[ChargingSession]:
        renew = []
        for state in states:
            before = self.first.get(state.session_id)
            if before is None or before.version == 0 or before.status != state.status:
                renew.append(state)
        return renew


async def project_batch(
    db: Db, tables: OutboxTables, projector: BatchingProjector, envelopes: Sequence[Envelope]
) -> None:
    """Claim a batch's events in the inbox at once and project the ones not handled before,
    in order; the sessions touched are read in one query and written in one statement."""
    fresh = await claim_events(
        db, tables, CONSUMER, list(dict.fromkeys(e.event_id for e in envelopes))
    )
    if not fresh:
        return
    await projector.preload(
        db,
        {
            uuid.UUID(e.aggregate_id)
            for e in envelopes
            if e.event_id in fresh and e.type in SESSION_EVENT_TYPES
        },
    )
    for envelope in envelopes:
        if envelope.event_id in fresh:
            fresh.discard(envelope.event_id)  # a duplicate later in the batch is skipped
            await projector.project(db, envelope)
    await projector.write(db)


def live_batch_handler(
    session_factory: Callable[[], AsyncSession],
    tables: OutboxTables,
    make_projector: Callable[[], BatchingProjector],
) -> BatchHandler:
    """The consumer's batched path: one partition's records, one transaction (after any
    running rebuild); the bus falls back to ``live_handler`` if it raises."""

    async def handle(deliveries: Sequence[Delivery]) -> None:
        async with session_factory() as db, db.begin():
            await repository.lock_store_shared(db)
            # A fresh projector per batch: nothing cached outlives a rolled-back transaction.
            await project_batch(db, tables, make_projector(), [d.envelope for d in deliveries])

    return handle
