"""How many events per second the live projection handles on real Kafka, one event per
transaction (the bus's one-by-one path) and batched (the path session-svc runs); both reach
the same store. ``-s`` shows the numbers."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from plugpay_events.bus.kafka import KafkaEventBus
from plugpay_events.envelope import Envelope
from plugpay_events.session_code import generate_signing_key
from plugpay_platform.database import Database
from plugpay_platform.migrations import upgrade_to_head
from session_harness import make_settings
from session_stories import mixed_sessions
from session_svc import repository
from session_svc.app import MIGRATIONS, STORE_TOPICS
from session_svc.handlers import CONSUMER, live_batch_handler, live_handler, timer_rules
from session_svc.tables import STORE_TABLES, outbox_tables
from sqlalchemy import func, select

pytestmark = [pytest.mark.infra, pytest.mark.kafka]


async def _handled(database: Database) -> int:
    async with database.engine.connect() as conn:
        inbox = outbox_tables.inbox
        value = await conn.scalar(
            select(func.count()).select_from(inbox).where(inbox.c.consumer == CONSUMER)
        )
    return int(value or 0)


async def _store(database: Database) -> dict[str, list[Any]]:
    async with database.engine.connect() as conn:
        return {
            t.name: [
                tuple(r)
                for r in (await conn.execute(select(t).order_by(*t.primary_key.columns))).all()
            ]
            for t in STORE_TABLES
        }


async def _run(
    bus: KafkaEventBus, database: Database, group: str, total: int, **handlers: Any
) -> float:
    """Events per second from the first handled event to the last."""
    consumer = bus.consumer(group, STORE_TOPICS, **handlers)
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 240
        while (first := await _handled(database)) == 0:
            assert loop.time() < deadline, "nothing was handled"
            await asyncio.sleep(0.01)
        began = time.monotonic()
        while (done := await _handled(database)) < total:
            assert loop.time() < deadline, f"{done}/{total} handled"
            await asyncio.sleep(0.02)
        return (total - first) / (time.monotonic() - began)
    finally:
        await consumer.stop()


async def test_batched_projection_is_faster_and_equal(
    kafka: str, database_url: str, topic_prefix: str
) -> None:
    settings = make_settings(database_url, topic_prefix, generate_signing_key(), kafka=kafka)
    await upgrade_to_head(MIGRATIONS, database_url)
    database = Database(database_url)
    bus = KafkaEventBus(kafka, topic_prefix=topic_prefix)
    await bus.start()
    try:
        await bus.ensure_topics(STORE_TOPICS)
        sessions = [
            [Envelope.wrap(e, producer="upstream") for e in s]
            for s in mixed_sessions(random.Random(3))
        ]
        published = 0
        for step in range(max(len(s) for s in sessions)):
            batch = [s[step] for s in sessions if step < len(s)]
            await bus.publish(batch)
            published += len(batch)

        one = await _run(
            bus,
            database,
            f"{topic_prefix}one",
            published,
            handler=live_handler(database.sessions, outbox_tables, timer_rules(settings)),
        )
        one_by_one_store = await _store(database)
        async with database.write() as db:
            await repository.reset_store(db, outbox_tables, CONSUMER)
        batched = await _run(
            bus,
            database,
            f"{topic_prefix}batched",
            published,
            handler=live_handler(database.sessions, outbox_tables, timer_rules(settings)),
            batch_handler=live_batch_handler(
                database.sessions, outbox_tables, timer_rules(settings)
            ),
        )
        print(
            f"\nPROJECTION on Kafka, {published} events: one by one {one:,.0f} ev/s,"
            f" batched {batched:,.0f} ev/s ({batched / one:.1f}x)"
        )
        assert await _store(database) == one_by_one_store
        assert batched > 2 * one
    finally:
        await bus.stop()
        await database.dispose()
