"""The outbox and inbox on real PostgreSQL: claims of any number of events are one statement
and name only the fresh ones; the relay publishes a batch once and marks all of it; when the
connection holding its lock dies, it takes the lock again on a new one (publishing on without
it would let a second relay publish too)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from plugpay_events import Envelope
from plugpay_events.bus.port import EventBus
from plugpay_events.contracts.stations import StationConnected
from plugpay_events.outbox import (
    Outbox,
    OutboxRelay,
    OutboxTables,
    claim_event,
    claim_events,
    define_outbox_tables,
)
from plugpay_testing.waiting import eventually
from sqlalchemy import MetaData, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

LOCK_HOLDER = """
SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
"""


class RecordingBus(EventBus):
    """Only what the relay uses: publish, recorded."""

    def __init__(self) -> None:
        self.published: list[Envelope] = []

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def ensure_topics(self, topics: Sequence[Any]) -> None: ...

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        self.published.extend(envelopes)

    async def publish_raw(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    async def read_topic(self, topic: str, *, timeout_s: float = 10.0) -> list[Any]:
        raise NotImplementedError


def connected(station_id: str) -> Envelope:
    event = StationConnected(
        station_id=station_id,
        connected_at=datetime(2026, 12, 3, tzinfo=UTC),
        ocpp_version="1.6",
        gateway_instance="gw-1",
    )
    return Envelope.wrap(event, producer="test")


@pytest.fixture
async def outbox_db(database_url: str) -> AsyncIterator[tuple[AsyncEngine, OutboxTables]]:
    metadata = MetaData()
    tables = define_outbox_tables(metadata)
    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield engine, tables
    finally:
        await engine.dispose()


async def test_a_claim_names_only_the_events_not_handled_before(
    outbox_db: tuple[AsyncEngine, OutboxTables],
) -> None:
    engine, tables = outbox_db
    a, b, c = (uuid.uuid4() for _ in range(3))
    async with engine.begin() as conn:
        assert await claim_events(conn, tables, "svc.x", []) == set()
        assert await claim_events(conn, tables, "svc.x", [a, b, a]) == {a, b}
    async with engine.begin() as conn:
        assert await claim_events(conn, tables, "svc.x", [b, c]) == {c}
        assert not await claim_event(conn, tables, "svc.x", a)
        # Another consumer's inbox is its own.
        assert await claim_events(conn, tables, "svc.y", [a, b, c]) == {a, b, c}
        assert await claim_event(conn, tables, "svc.z", a)
    async with engine.begin() as conn:
        rows = await conn.scalar(select(func.count()).select_from(tables.inbox))
    assert rows == 7


async def test_the_relay_publishes_a_batch_once_and_marks_all_of_it(
    outbox_db: tuple[AsyncEngine, OutboxTables],
) -> None:
    engine, tables = outbox_db
    envelopes = [connected(f"ST-{n}") for n in range(7)]
    async with engine.begin() as conn:
        await Outbox(tables).add(conn, envelopes[:4])
    async with engine.begin() as conn:
        await Outbox(tables).add(conn, envelopes[4:])
    bus = RecordingBus()
    relay = OutboxRelay(engine, tables, bus, batch_size=5)

    assert await relay.publish_pending() == 5
    assert await relay.publish_pending() == 2
    assert await relay.publish_pending() == 0
    assert [e.event_id for e in bus.published] == [e.event_id for e in envelopes]
    async with engine.begin() as conn:
        unpublished = await conn.scalar(
            select(func.count())
            .select_from(tables.outbox)
            .where(tables.outbox.c.published_at.is_(None))
        )
    assert unpublished == 0


async def lock_holders(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.scalars(text(LOCK_HOLDER))).all())


async def test_a_relay_whose_lock_connection_dies_takes_the_lock_again(database_url: str) -> None:
    metadata = MetaData()
    tables = define_outbox_tables(metadata)
    url = database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(url, pool_pre_ping=True)
    other = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    bus = RecordingBus()
    relay = OutboxRelay(engine, tables, bus, poll_interval_s=0.05, liveness_check_s=0.1)

    async def add(envelope: Envelope) -> None:
        async with engine.begin() as conn:
            await Outbox(tables).add(conn, [envelope])

    try:
        await relay.start()
        first = connected("ST-1")
        await add(first)
        await eventually(lambda: first in bus.published, 10, "the first event published")
        [holder] = await eventually(lambda: lock_holders(other), 10, "the relay's lock")

        async with other.begin() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder})

        async def new_holder() -> bool:
            holders = await lock_holders(other)
            return len(holders) == 1 and holders[0] != holder

        await eventually(new_holder, 10, "the lock taken again on a new connection")
        second = connected("ST-2")
        await add(second)
        await eventually(lambda: second in bus.published, 10, "an event after the reconnect")
    finally:
        await relay.stop()
        await engine.dispose()
        await other.dispose()
