"""Kafka adapter (aiokafka): acks=all, idempotent producer, manual commits after handling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from plugpay_events import serde
from plugpay_events.bus.port import (
    EventBus,
    GroupMember,
    RawRecord,
    stop_task,
)
from plugpay_events.envelope import Envelope
from plugpay_events.topics import Topic

log = logging.getLogger(__name__)


class KafkaEventBus(EventBus):
    """The event bus on Apache Kafka."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        client_id: str = "plugpay",
        replication_factor: int = 1,
        client_options: dict[str, Any] | None = None,
        commit_interval_s: float = 1.0,
    ) -> None:
        super().__init__(topic_prefix=topic_prefix)
        # How often a busy consumer commits its offsets; an idle one commits at once. Offsets
        # not yet committed are redelivered after a crash, and every handler is idempotent, so
        # this bounds redelivery, not correctness; an offset commit per fetch was a tenth of
        # a consumer's CPU (docs/performance.md).
        self.commit_interval_s = commit_interval_s
        # Connection options shared by every client (security protocol, SASL, TLS context).
        self.client_options = dict(client_options or {})
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.replication_factor = replication_factor
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is not None:
            return
        # acks=all + idempotence: a publish returns only when the in-sync replicas have it,
        # and producer retries never duplicate or reorder within a partition.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            **self.client_options,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaEventBus.start() was not called")
        return self._producer

    async def ensure_topics(self, topics: Sequence[Topic]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, **self.client_options)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(
                    name=self.topic_name(t),
                    num_partitions=t.partitions,
                    replication_factor=self.replication_factor,
                    topic_configs=dict(t.config),
                )
                for t in topics
                if self.topic_name(t) not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        finally:
            await admin.close()

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        futures = [
            await self.producer.send(
                self.topic_name(serde.topic_of(e)),
                value=serde.encode(e),
                key=e.aggregate_id.encode(),
                headers=serde.headers_for(e),
            )
            for e in envelopes
        ]
        await asyncio.gather(*futures)

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: serde.Headers
    ) -> None:
        await self.producer.send_and_wait(topic, value=value, key=key, headers=headers)

    async def read_topic(self, topic: str, *, timeout_s: float = 10.0) -> list[RawRecord]:
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **self.client_options,
        )
        await reader.start()
        try:
            partitions = await self.producer.partitions_for(topic)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                return []
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            end = await reader.end_offsets(tps)
            records: dict[int, list[RawRecord]] = {tp.partition: [] for tp in tps}
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while [tp for tp in tps if await reader.position(tp) < end[tp]]:
                if loop.time() > deadline:
                    raise TimeoutError(f"reading {topic} took longer than {timeout_s}s")
                batches = await reader.getmany(timeout_ms=200)
                for tp, messages in batches.items():
                    records[tp.partition].extend(
                        RawRecord(m.topic, m.partition, m.offset, m.key, m.value, tuple(m.headers))
                        for m in messages
                        if m.offset < end[tp]
                    )
            return [r for p in sorted(records) for r in records[p]]
        finally:
            await reader.stop()

    def _member_type(self) -> type[KafkaConsumer]:
        return KafkaConsumer


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move to another member, commit what this one has handled."""

    def __init__(self, owner: KafkaConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.commit_pending()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "%s assigned %s",
            self.owner.group,
            sorted(f"{p.topic}[{p.partition}]" for p in assigned),
        )


class KafkaConsumer(GroupMember):
    """One member of a Kafka consumer group."""

    bus: KafkaEventBus

    def __init__(self, *args: Any) -> None:  # GroupMember's, as EventBus.consumer passes them
        super().__init__(*args)
        self._consumer: AIOKafkaConsumer | None = None
        self._pending: dict[TopicPartition, int] = {}
        self._committed_at = 0.0

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bus.bootstrap_servers,
            group_id=self.group,
            client_id=f"{self.bus.client_id}-{self.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=500,
            **self.bus.client_options,
        )
        self._consumer.subscribe(self.topics, listener=_CommitOnRevoke(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"kafka-consumer-{self.group}")

    async def commit_pending(self) -> None:
        if self._consumer is not None and self._pending:
            offsets, self._pending = self._pending, {}
            await self._consumer.commit(offsets)
            self._committed_at = asyncio.get_running_loop().time()

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
            except Exception:
                # The client reconnects by itself; keep the member alive through broker restarts.
                log.exception("%s: fetch failed; retrying", self.group)
                await asyncio.sleep(1.0)
                continue
            for tp, messages in batches.items():
                records = [
                    RawRecord(m.topic, m.partition, m.offset, m.key, m.value) for m in messages
                ]

                async def done_up_to(next_offset: int, tp: TopicPartition = tp) -> None:
                    self._pending[tp] = next_offset  # committed with the next offset commit

                await self._deliver(records, done_up_to)
            if batches and loop.time() - self._committed_at < self.bus.commit_interval_s:
                continue
            try:
                await self.commit_pending()
            except Exception:
                # Uncommitted offsets are redelivered; handlers are idempotent, so that is safe.
                log.exception("%s: commit failed; records will be redelivered", self.group)

    async def stop(self, grace_s: float = 10.0) -> None:
        self._stopping.set()
        await stop_task(self._task, grace_s)
        self._task = None
        if self._consumer is not None:
            # Only offsets of fully handled records are pending: committing them is safe.
            with contextlib.suppress(Exception):
                await self.commit_pending()
            await self._consumer.stop()
            self._consumer = None
