"""One contract suite for the event-bus port, subclassed unchanged for every adapter."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from plugpay_events import Envelope, utc_now
from plugpay_events.bus import Consumer, Delivery, EventBus, PoisonEvent, RetryPolicy
from plugpay_events.contracts import SessionStopRequested
from plugpay_events.outbox import (
    define_outbox_tables,
    transactional_batch_handler,
    transactional_handler,
)
from plugpay_events.serde import encode, headers_for
from plugpay_events.topics import DEAD_LETTER, SESSIONS
from plugpay_testing import eventually
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)
# Kafka group joins and rebalances take seconds on a loaded machine.
WAIT_S = 30.0


def stop_requested(session_id: uuid.UUID, n: int = 0) -> Envelope:
    # The correlation id carries a sequence number so tests can check order per key.
    return Envelope.wrap(
        SessionStopRequested(session_id=session_id, requested_by="driver", requested_at=utc_now()),
        producer="contract-test",
        correlation_id=uuid.UUID(int=n),
    )


class Recorder:
    """A handler that remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[Delivery] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.seen.append(delivery)

    def ids(self) -> list[uuid.UUID]:
        return [d.envelope.event_id for d in self.seen]


class BusContract:
    """Semantics every EventBus adapter must keep. Subclasses provide ``make_bus``."""

    @pytest.fixture
    def make_bus(self) -> Callable[[], EventBus]:
        raise NotImplementedError

    @pytest.fixture
    async def bus(self, make_bus: Callable[[], EventBus]) -> AsyncIterator[EventBus]:
        bus = make_bus()
        await bus.start()
        await bus.ensure_topics([SESSIONS, DEAD_LETTER])
        yield bus
        await bus.stop()

    @pytest.fixture
    async def consumers(self) -> AsyncIterator[Callable[..., Awaitable[Consumer]]]:
        started: list[Consumer] = []

        async def start(bus: EventBus, group: str, handler: Any, **kwargs: Any) -> Consumer:
            consumer = bus.consumer(
                f"{bus.topic_prefix}{group}", [SESSIONS], handler, retry=FAST_RETRY, **kwargs
            )
            await consumer.start()
            started.append(consumer)
            return consumer

        yield start
        for consumer in started:
            await consumer.stop()

    async def test_per_key_order(self, bus: EventBus, consumers: Any) -> None:
        keys = [uuid.uuid4() for _ in range(8)]
        sent = [stop_requested(keys[i % len(keys)], i) for i in range(240)]
        for chunk in range(0, len(sent), 40):
            await bus.publish(sent[chunk : chunk + 40])
        recorder = Recorder()
        await consumers(bus, "order", recorder)
        await eventually(lambda: len(set(recorder.ids())) == len(sent), WAIT_S)
        per_key: dict[str, list[int]] = defaultdict(list)
        for delivery in recorder.seen:
            per_key[delivery.envelope.aggregate_id].append(delivery.envelope.correlation_id.int)
        for key in keys:
            sequence = per_key[str(key)]
            assert sequence == sorted(sequence), f"key {key} out of order"
            assert len(sequence) == 30

    async def test_failed_handler_sees_event_again(self, bus: EventBus, consumers: Any) -> None:
        envelope = stop_requested(uuid.uuid4())
        attempts: list[uuid.UUID] = []

        async def flaky(delivery: Delivery) -> None:
            attempts.append(delivery.envelope.event_id)
            if len(attempts) == 1:
                raise RuntimeError("crash before commit")

        await bus.publish([envelope])
        await consumers(bus, "flaky", flaky)
        await eventually(lambda: len(attempts) >= 2, WAIT_S)
        assert attempts[:2] == [envelope.event_id, envelope.event_id]

    async def test_uncommitted_event_goes_to_next_member(
        self, bus: EventBus, consumers: Any
    ) -> None:
        envelope = stop_requested(uuid.uuid4())
        started = asyncio.Event()

        async def hangs(delivery: Delivery) -> None:
            started.set()
            await asyncio.Event().wait()  # a process that dies mid-handling

        first = await consumers(bus, "crash", hangs)
        await bus.publish([envelope])
        await asyncio.wait_for(started.wait(), 30)
        await first.stop(grace_s=0)
        recorder = Recorder()
        await consumers(bus, "crash", recorder)
        await eventually(lambda: envelope.event_id in recorder.ids(), WAIT_S)

    async def test_group_members_split_partitions(self, bus: EventBus, consumers: Any) -> None:
        first, second = Recorder(), Recorder()
        await consumers(bus, "split", first)
        await consumers(bus, "split", second)
        # Keep publishing until both members have work: joining a group takes a moment.
        sent: list[Envelope] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not (first.seen and second.seen):
            assert loop.time() < deadline, "the second member never got a partition"
            batch = [stop_requested(uuid.uuid4(), len(sent) + i) for i in range(10)]
            await bus.publish(batch)
            sent.extend(batch)
            await asyncio.sleep(0.1)
        expected = {e.event_id for e in sent}
        await eventually(lambda: set(first.ids()) | set(second.ids()) >= expected, WAIT_S)
        partitions_first = {(d.topic, d.partition) for d in first.seen}
        partitions_second = {(d.topic, d.partition) for d in second.seen}
        assert partitions_first and partitions_second
        # Another group reads the same topic independently, from the beginning.
        other = Recorder()
        await consumers(bus, "other-group", other)
        await eventually(lambda: set(other.ids()) >= expected, WAIT_S)

    async def test_replay_from_zero_returns_everything_in_order(
        self, bus: EventBus, consumers: Any
    ) -> None:
        sent = [stop_requested(uuid.uuid4(), i) for i in range(50)]
        await bus.publish(sent)
        live = Recorder()
        await consumers(bus, "live", live)
        await eventually(lambda: len(live.seen) >= len(sent), WAIT_S)
        replay = Recorder()
        await consumers(bus, "replay", replay)
        await eventually(lambda: len(replay.seen) >= len(sent), WAIT_S)
        assert sorted(replay.ids()) == sorted(e.event_id for e in sent)
        by_partition: dict[int, list[int]] = defaultdict(list)
        for d in replay.seen:
            by_partition[d.partition].append(d.offset)
        for offsets in by_partition.values():
            assert offsets == sorted(offsets)
        raw = await bus.read_topic(bus.topic_name(SESSIONS))
        assert sorted(Envelope.model_validate_json(r.value).event_id for r in raw) == sorted(
            e.event_id for e in sent
        )

    async def test_duplicate_delivery_has_no_second_effect(
        self, bus: EventBus, consumers: Any, database_url: str
    ) -> None:
        metadata = MetaData()
        tables = define_outbox_tables(metadata)
        effects = Table(
            "effects",
            metadata,
            Column("key", String, primary_key=True),
            Column("count", Integer, nullable=False),
        )
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(effects.insert().values(key="k", count=0))
        sessions = async_sessionmaker(engine, expire_on_commit=False)

        async def count(session: AsyncSession, envelope: Envelope) -> None:
            await session.execute(
                update(effects).where(effects.c.key == "k").values(count=effects.c.count + 1)
            )

        handler = transactional_handler(sessions, tables, "counter", count)
        recorder = Recorder()

        async def both(delivery: Delivery) -> None:
            await handler(delivery)
            await recorder(delivery)

        envelope = stop_requested(uuid.uuid4())
        await bus.publish([envelope])
        await bus.publish([envelope])  # the same event delivered twice
        await consumers(bus, "dedupe", both)
        await eventually(lambda: len(recorder.seen) == 2, WAIT_S)
        async with engine.connect() as conn:
            assert await conn.scalar(select(effects.c.count)) == 1
        await engine.dispose()

    async def test_transactional_consumers_pass_over_what_they_do_not_handle(
        self, bus: EventBus, consumers: Any, database_url: str
    ) -> None:
        """``handles``: an event of another type has no effect and no inbox row (no
        transaction at all), one by one and in batches; a handled one still has both."""
        metadata = MetaData()
        tables = define_outbox_tables(metadata)
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        effects: list[tuple[str, uuid.UUID]] = []

        def effect_of(group: str) -> Any:
            async def effect(session: AsyncSession, envelope: Envelope) -> None:
                effects.append((group, envelope.event_id))

            return effect

        sent = [stop_requested(uuid.uuid4(), i) for i in range(6)]
        seen: dict[str, Recorder] = {}
        groups = (
            ("wants-stops", (SessionStopRequested,), True),
            ("wants-none", (), True),
            ("wants-none-one-by-one", (), False),
        )
        for group, handles, batching in groups:
            effect = effect_of(group)
            single = transactional_handler(sessions, tables, group, effect, handles)
            batched = transactional_batch_handler(sessions, tables, group, effect, handles)
            recorder = seen[group] = Recorder()

            async def one(delivery: Delivery, single: Any = single, seen: Any = recorder) -> None:
                await single(delivery)
                await seen(delivery)

            async def batch(
                deliveries: Sequence[Delivery], batched: Any = batched, seen: Any = recorder
            ) -> None:
                await batched(deliveries)
                for delivery in deliveries:
                    await seen(delivery)

            if batching:
                await consumers(bus, group, single, batch_handler=batch)
            else:
                await consumers(bus, group, one)
        await bus.publish(sent)
        expected = {e.event_id for e in sent}
        await eventually(lambda: all(set(r.ids()) >= expected for r in seen.values()), WAIT_S)
        async with engine.connect() as conn:
            inbox = (
                await conn.execute(select(tables.inbox.c.consumer, tables.inbox.c.event_id))
            ).all()
        assert sorted(effects) == sorted(("wants-stops", e) for e in expected)
        assert {(c, e) for c, e in inbox} == {("wants-stops", e) for e in expected}
        await engine.dispose()

    async def test_poison_events_are_dead_lettered_without_blocking(
        self, bus: EventBus, consumers: Any
    ) -> None:
        key = uuid.uuid4()
        topic = bus.topic_name(SESSIONS)
        garbage = b"\x00not json"
        invalid = stop_requested(key).model_copy(update={"payload": {"requested_by": "nobody"}})
        rejected = stop_requested(key, 1)
        good = stop_requested(key, 2)
        await bus.publish_raw(topic, str(key).encode(), garbage, [])
        await bus.publish_raw(topic, str(key).encode(), encode(invalid), headers_for(invalid))
        await bus.publish([rejected, good])
        seen = Recorder()

        async def handler(delivery: Delivery) -> None:
            if delivery.envelope.event_id == rejected.event_id:
                raise PoisonEvent("business_rule_violated")
            await seen(delivery)

        await consumers(bus, "poison", handler)
        await eventually(lambda: good.event_id in seen.ids(), WAIT_S)
        dead: list[Any] = []

        async def collect() -> None:
            dead[:] = await bus.read_topic(bus.topic_name(DEAD_LETTER))

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(dead) < 3 and loop.time() < deadline:
            await collect()
        reasons = sorted(dict(r.headers)["dlq.reason"].decode().split(":")[0] for r in dead)
        assert reasons == ["rejected", "undecodable", "undecodable"]
        assert {r.value for r in dead} >= {garbage, encode(invalid)}
        assert seen.ids() == [good.event_id]

    # --- the batched path (optional BatchHandler) -------------------------------------------

    async def test_batches_are_one_partition_in_offset_order(
        self, bus: EventBus, consumers: Any
    ) -> None:
        keys = [uuid.uuid4() for _ in range(8)]
        sent = [stop_requested(keys[i % len(keys)], i) for i in range(300)]
        await bus.publish(sent)
        batches = BatchRecorder()
        one_by_one = Recorder()
        await consumers(bus, "batched", one_by_one, batch_handler=batches)
        await eventually(lambda: len(batches.ids()) >= len(sent), WAIT_S)
        assert sorted(batches.ids()) == sorted(e.event_id for e in sent)  # each exactly once
        assert one_by_one.seen == []
        assert any(len(b) > 1 for b in batches.batches), "nothing was batched"
        for batch in batches.batches:
            assert len({(d.topic, d.partition) for d in batch}) == 1
            offsets = [d.offset for d in batch]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
        per_key: dict[str, list[int]] = defaultdict(list)
        for batch in batches.batches:
            for d in batch:
                per_key[d.envelope.aggregate_id].append(d.envelope.correlation_id.int)
        assert all(seq == sorted(seq) for seq in per_key.values())

    async def test_a_poison_record_in_a_batch_is_dead_lettered_alone(
        self, bus: EventBus, consumers: Any
    ) -> None:
        key = uuid.uuid4()
        topic = bus.topic_name(SESSIONS)
        sent = [stop_requested(key, i) for i in range(20)]
        poison = sent[7]
        await bus.publish(sent[:10])
        await bus.publish_raw(topic, str(key).encode(), b"\x00not json", [])
        await bus.publish(sent[10:])
        committed = Recorder()
        failed_batches: list[int] = []

        async def batch(deliveries: Sequence[Delivery]) -> None:
            # All or nothing, like one transaction: one poison record fails the whole batch.
            if any(d.envelope.event_id == poison.event_id for d in deliveries):
                failed_batches.append(len(deliveries))
                raise PoisonEvent("business_rule_violated")
            for d in deliveries:
                await committed(d)

        async def single(delivery: Delivery) -> None:
            if delivery.envelope.event_id == poison.event_id:
                raise PoisonEvent("business_rule_violated")
            await committed(delivery)

        await consumers(bus, "batch-poison", single, batch_handler=batch)
        good = {e.event_id for e in sent} - {poison.event_id}
        await eventually(lambda: set(committed.ids()) >= good, WAIT_S)
        assert sorted(committed.ids()) == sorted(good)  # each once, none lost with the batch
        assert failed_batches
        dead: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(dead) < 2 and loop.time() < deadline:
            dead = await bus.read_topic(bus.topic_name(DEAD_LETTER))
        reasons = sorted(dict(r.headers)["dlq.reason"].decode().split(":")[0] for r in dead)
        assert reasons == ["rejected", "undecodable"]
        assert encode(poison) in {r.value for r in dead}

    async def test_a_failing_batch_is_retried_then_falls_back_one_by_one(
        self, bus: EventBus, consumers: Any
    ) -> None:
        sent = [stop_requested(uuid.uuid4(), i) for i in range(30)]
        await bus.publish(sent)
        batches = BatchRecorder()
        transient_failures: list[int] = []

        async def flaky_batch(deliveries: Sequence[Delivery]) -> None:
            # A lost connection: the same batch again, not the fallback.
            if len(transient_failures) < 2:
                transient_failures.append(len(deliveries))
                raise OSError("connection reset")
            await batches(deliveries)

        one_by_one = Recorder()
        await consumers(bus, "batch-transient", one_by_one, batch_handler=flaky_batch)
        await eventually(lambda: len(batches.ids()) >= len(sent), WAIT_S)
        assert sorted(batches.ids()) == sorted(e.event_id for e in sent)
        assert one_by_one.seen == [] and len(transient_failures) == 2
        # A bug (not transient): the records go through the one-by-one handler instead.
        more = [stop_requested(uuid.uuid4(), i) for i in range(10)]

        async def broken_batch(deliveries: Sequence[Delivery]) -> None:
            raise RuntimeError("bug in the batch path")

        await bus.publish(more)
        fallback = Recorder()
        await consumers(bus, "batch-broken", fallback, batch_handler=broken_batch)
        await eventually(lambda: set(fallback.ids()) >= {e.event_id for e in sent + more}, WAIT_S)
        assert len(fallback.ids()) == len(sent) + len(more)

    async def test_an_unfinished_batch_is_not_committed(
        self, bus: EventBus, consumers: Any
    ) -> None:
        sent = [stop_requested(uuid.uuid4(), i) for i in range(10)]
        started = asyncio.Event()

        async def hangs(deliveries: Sequence[Delivery]) -> None:
            started.set()
            await asyncio.Event().wait()  # a process that dies mid-transaction

        first = await consumers(bus, "batch-crash", Recorder(), batch_handler=hangs)
        await bus.publish(sent)
        await asyncio.wait_for(started.wait(), 30)
        await first.stop(grace_s=0)
        batches = BatchRecorder()
        await consumers(bus, "batch-crash", Recorder(), batch_handler=batches)
        await eventually(lambda: set(batches.ids()) >= {e.event_id for e in sent}, WAIT_S)

    async def test_transactional_batches_have_one_effect_per_event(
        self, bus: EventBus, consumers: Any, database_url: str
    ) -> None:
        """The inbox + outbox consumer's batched path: duplicates (in and across batches) have
        no second effect, every effect's outgoing event is in the outbox exactly once, and a
        batch whose effect fails commits nothing — its good events still take effect once."""
        metadata = MetaData()
        tables = define_outbox_tables(metadata)
        effects = Table(
            "batch_effects",
            metadata,
            Column("event_id", String, primary_key=True),
            Column("count", Integer, nullable=False),
        )
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        key = uuid.uuid4()
        sent = [stop_requested(key, i) for i in range(40)]
        poison = sent[25]

        async def effect(session: AsyncSession, envelope: Envelope) -> Sequence[Envelope]:
            if envelope.event_id == poison.event_id:
                raise PoisonEvent("business_rule_violated")
            await session.execute(
                pg_insert(effects)
                .values(event_id=str(envelope.event_id), count=1)
                .on_conflict_do_update(
                    index_elements=[effects.c.event_id], set_={"count": effects.c.count + 1}
                )
            )
            return [stop_requested(uuid.uuid4(), envelope.correlation_id.int)]

        group = "tx-batch"
        batched = transactional_batch_handler(sessions, tables, group, effect)
        batch_sizes: list[int] = []

        async def batch(deliveries: Sequence[Delivery]) -> None:
            batch_sizes.append(len(deliveries))
            await batched(deliveries)

        await bus.publish(sent[:20] + sent[5:10])  # duplicates within a fetch
        await bus.publish(sent[20:] + sent[:3])  # and across fetches
        await consumers(
            bus,
            group,
            transactional_handler(sessions, tables, group, effect),
            batch_handler=batch,
        )
        good = {str(e.event_id) for e in sent} - {str(poison.event_id)}

        async def done() -> bool:
            async with engine.connect() as conn:
                return len((await conn.execute(select(effects.c.event_id))).all()) >= len(good)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not await done():
            assert loop.time() < deadline, "effects never all applied"
            await asyncio.sleep(0.1)
        dead: list[Any] = []
        while not dead and loop.time() < deadline:
            dead = await bus.read_topic(bus.topic_name(DEAD_LETTER))
        async with engine.connect() as conn:
            rows = dict((await conn.execute(select(effects.c.event_id, effects.c.count))).all())
            outbox = await conn.scalar(select(func.count()).select_from(tables.outbox))
        assert set(rows) == good and set(rows.values()) == {1}
        assert outbox == len(good)  # one outgoing event per effect, none from rolled-back tries
        assert [r.value for r in dead] == [encode(poison)]
        assert any(n > 1 for n in batch_sizes), "nothing was batched"
        await engine.dispose()


class BatchRecorder:
    """A batch handler that remembers the batches it saw."""

    def __init__(self) -> None:
        self.batches: list[list[Delivery]] = []

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        self.batches.append(list(deliveries))

    def ids(self) -> list[uuid.UUID]:
        return [d.envelope.event_id for b in self.batches for d in b]
