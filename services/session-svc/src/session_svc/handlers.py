"""The session store as one projection of the log: ``StoreFold`` applies events to the store in
memory (the pure aggregate folds each session), and two writers put what changed into
PostgreSQL — the live consumers and the rebuild from offset 0 (``session_svc.rebuild``), which
reach the same rows (tests/integration/test_store_fold.py and test_rebuild_kafka.py compare them).

Live: the consumer hands over each partition's fetched records as one batch; the batch's
sessions are read once (row-locked) into a fresh fold, its events applied, and each changed row
written once, in one transaction with the inbox claims (idempotent), after waiting out a
rebuild. A batch that fails goes through ``live_handler`` one event per transaction (the same
path with a batch of one), so only a poison event is dead-lettered.

Rebuild: one fold over the whole log, its rows written with COPY once per batch of events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
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
from plugpay_events.outbox import OutboxTables, claim_events
from plugpay_events.registry import EVENT_TYPES
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from session_svc import repository
from session_svc.domain import (
    CODE_EXPIRY,
    OCCURRED_FIELD,
    START_TIMEOUT,
    ChargingSession,
    SessionStatus,
    apply,
    start_deadline,
)
from session_svc.settings import Settings

CONSUMER = "session-svc.store"

Db = AsyncSession | AsyncConnection


SESSION_EVENT_TYPES: frozenset[str] = frozenset(t.type for t in OCCURRED_FIELD)


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
# The other event types the store keeps something of (subclasses included).
_OTHER_STORE_EVENT_TYPES: frozenset[str] = frozenset(
    name for name, cls in EVENT_TYPES.items() if issubclass(cls, _STORED_OTHERWISE)
)


class TimerRules:
    """The timers a session in a given state needs: derived from the state, so a rebuild
    recreates them."""

    def __init__(
        self,
        *,
        code_tolerance: timedelta,
        clock_skew: timedelta,
        start_timeout: timedelta | None,
        start_backstop: timedelta = timedelta(0),
    ) -> None:
        self.code_tolerance = code_tolerance
        self.clock_skew = clock_skew
        self.start_timeout = start_timeout
        self.start_backstop = start_backstop

    def timers_for(self, state: ChargingSession) -> list[tuple[str, uuid.UUID, datetime]]:
        if state.status is SessionStatus.CODE_ISSUED:
            assert state.code_expires_at and state.session_started_at
            # The moment the verifier stops accepting the code, whichever limit comes first.
            due = min(state.code_expires_at, state.session_started_at + self.code_tolerance)
            return [(CODE_EXPIRY, state.session_id, due + self.clock_skew)]
        deadline = start_deadline(state, self.start_timeout, self.start_backstop)
        if deadline is not None:
            return [(START_TIMEOUT, state.session_id, deadline)]
        return []


def timer_rules(settings: Settings) -> TimerRules:
    return TimerRules(
        code_tolerance=settings.code_tolerance,
        clock_skew=settings.clock_skew,
        start_timeout=settings.start_timeout,
        start_backstop=settings.start_backstop,
    )


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
    """The store's projection, in memory: every event once (by event id, as the inbox does),
    each session folded with the pure aggregate, then ``take`` gives each changed row once.
    A live batch seeds it with the stored states of its sessions; a rebuild starts it empty
    and keeps every session of the log."""

    def __init__(self, rules: TimerRules) -> None:
        self.rules = rules
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

    def seed(self, stored: Mapping[uuid.UUID, ChargingSession]) -> None:
        """Start from these sessions as stored (their rows and timers exist)."""
        self.sessions.update(stored)
        self.written |= stored.keys()

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
            # Only a strictly newer sample replaces the kept one (as record_meter_reading does
            # against the stored one).
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
        changes.timers = [t for s in states for t in self.rules.timers_for(s)]
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


async def write_live(
    db: Db,
    changes: StoreChanges,
    stored: Mapping[uuid.UUID, ChargingSession],
) -> None:
    """Write a live batch's changes over the stored rows. A session's timers are derived again
    only where its status changed, so a timer that already fired (and was deleted) is not
    brought back by a repeated event."""
    await repository.save_sessions(db, changes.sessions)
    renew = {
        s.session_id
        for s in changes.sessions
        if (before := stored.get(s.session_id)) is None or before.status != s.status
    }
    await repository.replace_timers(db, list(renew), [t for t in changes.timers if t[1] in renew])
    for session_id, reading in changes.meter:
        await repository.record_meter_reading(db, session_id, reading)
    await repository.record_stations(db, changes.presence, changes.registrations)
    await repository.record_scan_claims(db, changes.scan_claims)
    # Open streams re-read once per batch, not once per event.
    await repository.notify_sessions_changed(db, changes.touched)
    # Typed scans waiting for a just-issued code look again (service.SessionService.scan).
    await repository.notify_codes_learned(
        db,
        {
            s.code
            for s in changes.sessions
            if s.code and ((before := stored.get(s.session_id)) is None or before.code != s.code)
        },
    )


async def project_batch(
    db: Db, tables: OutboxTables, rules: TimerRules, envelopes: Sequence[Envelope]
) -> None:
    """Claim a batch's events in the inbox at once and project the ones not handled before,
    in order; the sessions touched are read in one query and written in one statement."""
    fresh = await claim_events(
        db, tables, CONSUMER, list(dict.fromkeys(e.event_id for e in envelopes))
    )
    if not fresh:
        return
    session_ids = {
        uuid.UUID(e.aggregate_id)
        for e in envelopes
        if e.event_id in fresh and e.type in SESSION_EVENT_TYPES
    }
    stored = await repository.load_sessions(db, session_ids, for_update=True) if session_ids else {}
    fold = StoreFold(rules)
    fold.seed(stored)
    for envelope in envelopes:
        if envelope.event_id in fresh:
            fresh.discard(envelope.event_id)  # a duplicate later in the batch is skipped
            fold.apply(envelope.event_id, envelope.aggregate_id, envelope.event())
    await write_live(db, fold.take(), stored)


def live_handler(
    session_factory: Callable[[], AsyncSession], tables: OutboxTables, rules: TimerRules
) -> Handler:
    """One event, one transaction (after any running rebuild): the consumer's fallback when a
    batch fails, so only a poison event is dead-lettered."""

    async def handle(delivery: Delivery) -> None:
        async with session_factory() as db, db.begin():
            await repository.lock_store_shared(db)
            await project_batch(db, tables, rules, [delivery.envelope])

    return handle


def live_batch_handler(
    session_factory: Callable[[], AsyncSession], tables: OutboxTables, rules: TimerRules
) -> BatchHandler:
    """The consumer's batched path: one partition's records, one transaction (after any
    running rebuild); the bus falls back to ``live_handler`` if it raises."""

    async def handle(deliveries: Sequence[Delivery]) -> None:
        async with session_factory() as db, db.begin():
            await repository.lock_store_shared(db)
            await project_batch(db, tables, rules, [d.envelope for d in deliveries])

    return handle
