"""Transactional outbox and idempotent inbox on PostgreSQL (SQLAlchemy 2 async).

A service writes its events in the same transaction as its state change (``Outbox.add``), and
records the ids of the events it handled in the same transaction as their effect
(``claim_event``). A relay publishes the outbox in id order per service.

The relay never skips a row that commits late: it does not keep a high-water mark (sequence
order is not commit order), it selects rows whose ``published_at`` is still NULL, oldest first.
Writers of one aggregate serialise on that aggregate's row, so ids follow commit order per
aggregate and the relay publishes each aggregate's events in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    MetaData,
    String,
    Table,
    Uuid,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import TextClause

from plugpay_events import tracing
from plugpay_events.bus.port import BatchHandler, Delivery, EventBus, Handler, stop_task
from plugpay_events.envelope import Envelope, Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxTables:
    """The outbox and inbox tables of one service's schema."""

    outbox: Table
    inbox: Table


def define_outbox_tables(metadata: MetaData) -> OutboxTables:
    """Add ``outbox`` and ``inbox`` tables to a service's metadata (and its migrations)."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False, unique=True),
        Column("aggregate_id", String(200), nullable=False),
        Column("envelope", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return OutboxTables(outbox, inbox)


def _channel(tables: OutboxTables) -> str:
    schema = tables.outbox.schema or "public"
    return f"outbox_{schema}"


@dataclass(frozen=True)
class _Statements:
    """The statements every unit of work and every relay batch runs, built once per schema:
    building a statement and its cache key costs more CPU than running it
    (docs/performance.md). Lists are bound as one array, so every length is one statement."""

    add: Insert
    notify: TextClause
    claim_one: Insert
    claim_many: Insert
    mark_published: Update


@functools.cache
def _statements(tables: OutboxTables) -> _Statements:
    outbox, inbox = tables.outbox, tables.inbox
    claimed = inbox.c.event_id
    return _Statements(
        add=insert(outbox),
        notify=text("SELECT pg_notify(:channel, '')").bindparams(channel=_channel(tables)),
        claim_one=pg_insert(inbox)
        .values(consumer=bindparam("consumer"), event_id=bindparam("event_id"))
        .on_conflict_do_nothing()
        .returning(claimed),
        claim_many=pg_insert(inbox)
        .from_select(
            ["consumer", "event_id"],
            select(
                bindparam("consumer", type_=inbox.c.consumer.type),
                func.unnest(bindparam("event_ids", type_=ARRAY(claimed.type))),
            ),
        )
        .on_conflict_do_nothing()
        .returning(claimed),
        mark_published=update(outbox)
        .where(outbox.c.id == any_(bindparam("ids", type_=ARRAY(outbox.c.id.type))))
        .values(published_at=func.now()),
    )


class Outbox:
    """Writes envelopes into the outbox inside the caller's transaction."""

    def __init__(self, tables: OutboxTables) -> None:
        self.tables = tables

    async def add(
        self, session: AsyncSession | AsyncConnection, envelopes: Sequence[Envelope]
    ) -> None:
        """Queue events; they are published only if the caller's transaction commits."""
        if not envelopes:
            return
        # Record the trace of the request or handler writing them; the relay publishes later.
        envelopes = [tracing.stamp(e) for e in envelopes]
        statements = _statements(self.tables)
        await session.execute(
            statements.add,
            [
                {
                    "event_id": e.event_id,
                    "aggregate_id": e.aggregate_id,
                    "envelope": e.model_dump(mode="json"),
                }
                for e in envelopes
            ],
        )
        # Delivered on commit only: wakes the relay without polling.
        await session.execute(statements.notify)


async def claim_event(
    session: AsyncSession | AsyncConnection,
    tables: OutboxTables,
    consumer: str,
    event_id: uuid.UUID,
) -> bool:
    """Record that ``consumer`` handles ``event_id`` in the caller's transaction.

    Returns False when it was handled before: the caller must then do nothing. A concurrent
    duplicate blocks on the primary key until the first commits, then sees the conflict.
    """
    result = await session.execute(
        _statements(tables).claim_one, {"consumer": consumer, "event_id": event_id}
    )
    return result.first() is not None


async def claim_events(
    session: AsyncSession | AsyncConnection,
    tables: OutboxTables,
    consumer: str,
    event_ids: Sequence[uuid.UUID],
) -> set[uuid.UUID]:
    """``claim_event`` for many events in one statement; returns the ids not handled before."""
    if not event_ids:
        return set()
    result = await session.execute(
        _statements(tables).claim_many,
        {"consumer": consumer, "event_ids": sorted(set(event_ids))},
    )
    return set(result.scalars().all())


EffectFn = Callable[[AsyncSession, Envelope], Awaitable[Sequence[Envelope] | None]]


def _wanted(handles: Collection[type[Event]] | None) -> Callable[[Envelope], bool]:
    if handles is None:
        return lambda _envelope: True
    names = frozenset(cls.type for cls in handles)
    return lambda envelope: envelope.type in names


def transactional_handler(
    session_factory: Callable[[], AsyncSession],
    tables: OutboxTables,
    consumer: str,
    effect: EffectFn,
    handles: Collection[type[Event]] | None = None,
) -> Handler:
    """Wrap an effect so inbox claim, state change and outgoing events share one transaction.

    ``handles``: the event classes the effect acts on. Any other event is passed over before a
    transaction starts: with no effect there is nothing to claim, and a consumer reading a busy
    topic for two of its event types pays nothing for the rest."""
    outbox = Outbox(tables)
    wanted = _wanted(handles)

    async def handle(delivery: Delivery) -> None:
        if not wanted(delivery.envelope):
            return
        async with session_factory() as session, session.begin():
            if not await claim_event(session, tables, consumer, delivery.envelope.event_id):
                return
            emitted = await effect(session, delivery.envelope)
            if emitted:
                await outbox.add(session, emitted)

    return handle


def transactional_batch_handler(
    session_factory: Callable[[], AsyncSession],
    tables: OutboxTables,
    consumer: str,
    effect: EffectFn,
    handles: Collection[type[Event]] | None = None,
) -> BatchHandler:
    """``transactional_handler`` for a fetch's worth of one partition: the same effects in the
    same order, but one transaction, one inbox insert and one outbox insert for all of them
    (a backlog costs one commit per batch instead of one per event). If anything raises,
    nothing commits and the bus hands the records one by one to the per-event handler."""
    outbox = Outbox(tables)
    wanted = _wanted(handles)

    async def handle(deliveries: Sequence[Delivery]) -> None:
        deliveries = [d for d in deliveries if wanted(d.envelope)]
        if not deliveries:
            return
        async with session_factory() as session, session.begin():
            fresh = await claim_events(
                session, tables, consumer, [d.envelope.event_id for d in deliveries]
            )
            emitted: list[Envelope] = []
            for delivery in deliveries:
                envelope = delivery.envelope
                if envelope.event_id not in fresh:
                    continue
                fresh.discard(envelope.event_id)  # a duplicate later in the batch is skipped
                produced = await effect(session, envelope)
                if produced:
                    # Each outgoing event continues the trace of the event that caused it.
                    cause = tracing.parent_context(
                        tracing.traceparent_of(envelope, delivery.headers)
                    )
                    emitted.extend(tracing.stamp(e, cause) for e in produced)
            await outbox.add(session, emitted)

    return handle


class OutboxRelay:
    """Publishes a service's outbox to the bus; one active relay per schema (advisory lock)."""

    def __init__(
        self,
        engine: AsyncEngine,
        tables: OutboxTables,
        bus: EventBus,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        keep_published_for: str = "7 days",
        liveness_check_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.liveness_check_s = liveness_check_s
        self.tables = tables
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.keep_published_for = keep_published_for
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self.published_total = 0
        outbox = tables.outbox
        self._unpublished = (
            select(outbox.c.id, outbox.c.envelope)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=False)
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{_channel(self.tables)}")

    async def stop(self, grace_s: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        await stop_task(self._task, grace_s)
        self._task = None

    async def backlog(self) -> int:
        """How many events wait to be published (a metric)."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(self.tables.outbox)
                .where(self.tables.outbox.c.published_at.is_(None))
            )
        return int(value or 0)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows in id order; returns how many."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(self._unpublished)).all()
            if not rows:
                return 0
            envelopes = [Envelope.model_validate(r.envelope) for r in rows]
            # Publish before marking: a crash in between republishes (consumers dedupe).
            await self.bus.publish(envelopes)
            await conn.execute(
                _statements(self.tables).mark_published, {"ids": [r.id for r in rows]}
            )
        self.published_total += len(rows)
        return len(rows)

    async def prune(self) -> None:
        """Drop rows published long ago; the bus is the event log, not the outbox."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(self.tables.outbox).where(
                    self.tables.outbox.c.published_at
                    < func.now() - text(f"interval '{self.keep_published_for}'")
                )
            )

    async def _publish_while_alive(self, raw: Any) -> None:
        """Publish until stopped, checking now and then that the connection holding the lock
        is alive: a relay that lost it (and so its lock) must stop, or a second relay would
        take the lock and both would publish, out of order."""
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while not self._stopping.is_set():
            self._wakeup.clear()
            # A short batch was everything committed before the clear; a later commit notifies,
            # so polling again at once would only find nothing (a transaction per batch).
            if await self.publish_pending() < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.poll_interval_s)
            if loop.time() - checked >= self.liveness_check_s:
                await raw.execute("SELECT 1")
                checked = loop.time()

    async def _run(self) -> None:
        channel = _channel(self.tables)
        while not self._stopping.is_set():
            try:
                async with self.engine.connect() as listen_conn:
                    raw: Any = (await listen_conn.get_raw_connection()).driver_connection
                    await raw.add_listener(channel, lambda *_: self._wakeup.set())
                    # Only one relay per schema publishes, so per-aggregate order holds.
                    while not await listen_conn.scalar(
                        text("SELECT pg_try_advisory_lock(hashtext(:c))"), {"c": channel}
                    ):
                        await listen_conn.commit()
                        if self._stopping.is_set():
                            return
                        await asyncio.sleep(self.poll_interval_s * 4)
                    await listen_conn.commit()
                    try:
                        await self._publish_while_alive(raw)
                    except Exception:
                        # Its lock and LISTEN died with it: never hand it out again.
                        with contextlib.suppress(Exception):
                            await listen_conn.invalidate()
                        raise
            except asyncio.CancelledError:
                raise
            except Exception:
                # Kafka or PostgreSQL down: rows stay in the outbox until they can go.
                log.exception("outbox relay %s failed; retrying", channel)
                await asyncio.sleep(1.0)
