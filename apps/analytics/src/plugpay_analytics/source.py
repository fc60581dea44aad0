"""Read-only access to the event log: Kafka or the embedded PostgreSQL log.

Neither source writes anything anywhere: on Kafka the reader has no consumer group (it assigns
partitions and seeks, so it needs only Describe + Read on the topics — the ``analyst`` KafkaUser);
on the embedded log every query runs in a read-only transaction and needs only ``SELECT`` on
``eventlog.records`` and ``eventlog.partition_heads``.

A read is planned first: for every partition, the first offset to read (from the beginning, an
offset or a log timestamp) and the offset to stop before (now, an offset or a log timestamp). The
plan is a snapshot, so records appended while an export runs wait for the next run.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import os
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

BoundKind = Literal["beginning", "end", "offset", "time"]


@dataclass(frozen=True)
class Bound:
    """A position in every partition of a topic.

    ``offset`` bounds are per partition (``offsets`` maps partition → offset; ``offset`` is the
    default for partitions not listed). A start offset is inclusive, an end offset exclusive.
    ``time`` bounds use the log time (Kafka record timestamp, embedded ``appended_at``): start at
    the first record at or after ``time``, stop before the first record at or after it.
    """

    kind: BoundKind = "beginning"
    offset: int | None = None
    offsets: tuple[tuple[int, int], ...] = ()
    time: dt.datetime | None = None

    @classmethod
    def beginning(cls) -> Bound:
        return cls("beginning")

    @classmethod
    def now(cls) -> Bound:
        return cls("end")

    @classmethod
    def at_offset(cls, offset: int, per_partition: dict[int, int] | None = None) -> Bound:
        return cls("offset", offset=offset, offsets=tuple(sorted((per_partition or {}).items())))

    @classmethod
    def at_time(cls, time: dt.datetime) -> Bound:
        if time.tzinfo is None:
            raise ValueError("a time bound needs a time zone (e.g. 2025-05-01T00:00:00Z)")
        return cls("time", time=time.astimezone(dt.UTC))

    @classmethod
    def parse_offsets(cls, text: str) -> Bound:
        """``1200`` (every partition) or ``0=1200,3=900`` (per partition; others from 0/end)."""
        if "=" not in text:
            return cls.at_offset(int(text))
        per: dict[int, int] = {}
        for item in text.split(","):
            partition, _, offset = item.partition("=")
            per[int(partition)] = int(offset)
        return cls("offset", offsets=tuple(sorted(per.items())))

    def offset_for(self, partition: int) -> int | None:
        return dict(self.offsets).get(partition, self.offset)


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``start`` (inclusive) to ``stop`` (exclusive) of one partition."""

    topic: str  # logical name, without the bus prefix
    partition: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return max(self.stop - self.start, 0)


@dataclass(frozen=True)
class LogRecord:
    """One stored record with its log time."""

    topic: str  # logical name
    partition: int
    offset: int
    timestamp: dt.datetime | None
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Batch:
    """Records of one partition in offset order; ``done`` when the partition's range is read."""

    topic: str
    partition: int
    records: list[LogRecord]
    done: bool


class LogSource(abc.ABC):
    """A read-only event log."""

    name: str

    def __init__(self, topic_prefix: str = "") -> None:
        self.topic_prefix = topic_prefix

    def physical(self, topic: str) -> str:
        return f"{self.topic_prefix}{topic}"

    async def __aenter__(self) -> LogSource:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def plan(self, topic: str, start: Bound, end: Bound) -> list[PartitionRange]:
        """The offsets to read in each partition of ``topic`` (empty if it does not exist)."""

    @abc.abstractmethod
    def read(
        self, ranges: Sequence[PartitionRange], batch_size: int = 2000
    ) -> AsyncIterator[Batch]:
        """The records of ``ranges``; each partition's batches in offset order, the last one
        with ``done`` set (also for an empty range)."""


def _resolve(
    bound: Bound, partition: int, low: int, high: int, by_time: int | None, *, is_end: bool
) -> int:
    if bound.kind == "beginning":
        offset = low
    elif bound.kind == "end":
        offset = high
    elif bound.kind == "offset":
        given = bound.offset_for(partition)
        offset = (high if is_end else low) if given is None else given
    else:
        offset = high if by_time is None else by_time
    return min(max(offset, low), high)


def _ms(time: dt.datetime) -> int:
    return int(time.timestamp() * 1000)


def kafka_security_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """aiokafka security settings from ``PLUGPAY_KAFKA_SECURITY_PROTOCOL`` (PLAINTEXT, SSL,
    SASL_PLAINTEXT, SASL_SSL), ``PLUGPAY_KAFKA_SASL_MECHANISM`` (SCRAM-SHA-512, ...),
    ``PLUGPAY_KAFKA_SASL_USERNAME`` / ``_PASSWORD`` and ``PLUGPAY_KAFKA_SSL_CAFILE``: the
    analyst KafkaUser's credentials."""
    env = dict(os.environ) if env is None else env
    protocol = env.get("PLUGPAY_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    settings: dict[str, Any] = {"security_protocol": protocol}
    if "SSL" in protocol:
        context = ssl.create_default_context(cafile=env.get("PLUGPAY_KAFKA_SSL_CAFILE"))
        settings["ssl_context"] = context
    if protocol.startswith("SASL"):
        settings["sasl_mechanism"] = env.get("PLUGPAY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
        settings["sasl_plain_username"] = env.get("PLUGPAY_KAFKA_SASL_USERNAME")
        settings["sasl_plain_password"] = env.get("PLUGPAY_KAFKA_SASL_PASSWORD")
    return settings


class KafkaSource(LogSource):
    """Kafka without a consumer group: assign, seek, read, never commit."""

    name = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        client_id: str = "plugpay-analytics",
        security: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(topic_prefix)
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.security = kafka_security_from_env() if security is None else security
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **self.security,
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaSource.start() was not called")
        return self._consumer

    async def plan(self, topic: str, start: Bound, end: Bound) -> list[PartitionRange]:
        name = self.physical(topic)
        # The public topics() returns names only; its metadata snapshot has the partitions.
        client = self.consumer._client
        partitions = (await client.fetch_all_metadata()).partitions_for_topic(name)
        if partitions:
            await client.add_topic(name)  # track it, so offset look-ups find the leaders
        if not partitions:
            return []
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        low = await self.consumer.beginning_offsets(tps)
        high = await self.consumer.end_offsets(tps)
        by_time: dict[str, dict[TopicPartition, int | None]] = {}
        for label, bound in (("start", start), ("end", end)):
            if bound.kind == "time":
                assert bound.time is not None
                found = await self.consumer.offsets_for_times({tp: _ms(bound.time) for tp in tps})
                by_time[label] = {tp: (f.offset if f else None) for tp, f in found.items()}
        ranges = []
        for tp in tps:
            first = _resolve(
                start,
                tp.partition,
                low[tp],
                high[tp],
                by_time.get("start", {}).get(tp),
                is_end=False,
            )
            stop = _resolve(
                end, tp.partition, low[tp], high[tp], by_time.get("end", {}).get(tp), is_end=True
            )
            ranges.append(PartitionRange(topic, tp.partition, first, max(stop, first)))
        return ranges

    async def read(
        self, ranges: Sequence[PartitionRange], batch_size: int = 2000
    ) -> AsyncIterator[Batch]:
        consumer = self.consumer
        todo: dict[TopicPartition, PartitionRange] = {}
        for r in ranges:
            if r.size == 0:
                yield Batch(r.topic, r.partition, [], True)
            else:
                todo[TopicPartition(self.physical(r.topic), r.partition)] = r
        if not todo:
            return
        consumer.assign(list(todo))
        for tp, r in todo.items():
            consumer.seek(tp, r.start)
        try:
            while todo:
                try:
                    fetched = await consumer.getmany(*todo, timeout_ms=1000, max_records=batch_size)
                except KafkaError:
                    await asyncio.sleep(1.0)  # the client reconnects; the position is kept
                    continue
                for tp, messages in fetched.items():
                    wanted = todo.get(tp)
                    if wanted is None:
                        continue
                    records = [
                        LogRecord(
                            wanted.topic,
                            m.partition,
                            m.offset,
                            dt.datetime.fromtimestamp(m.timestamp / 1000, dt.UTC)
                            if m.timestamp is not None and m.timestamp >= 0
                            else None,
                            m.key,
                            m.value,
                        )
                        for m in messages
                        if wanted.start <= m.offset < wanted.stop
                    ]
                    # Transaction markers take offsets too, so compare the position, not counts.
                    done = await consumer.position(tp) >= wanted.stop or (
                        bool(messages) and messages[-1].offset >= wanted.stop - 1
                    )
                    if done:
                        consumer.pause(tp)
                        del todo[tp]
                    if records or done:
                        yield Batch(wanted.topic, wanted.partition, records, done)
                # A partition whose remaining offsets are only markers gets no messages.
                for tp, r in list(todo.items()):
                    if tp not in fetched and await consumer.position(tp) >= r.stop:
                        del todo[tp]
                        yield Batch(r.topic, r.partition, [], True)
        finally:
            consumer.assign([])


class EmbeddedLogSource(LogSource):
    """The embedded log (``eventlog`` schema in PostgreSQL), read in read-only transactions."""

    name = "embedded"

    def __init__(self, database_url: str, *, topic_prefix: str = "") -> None:
        super().__init__(topic_prefix)
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        # Every transaction of this connection is read-only: a mistake here cannot write.
        self._conn = await asyncpg.connect(
            self.dsn,
            server_settings={
                "default_transaction_read_only": "on",
                "application_name": "plugpay-analytics",
            },
        )

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("EmbeddedLogSource.start() was not called")
        return self._conn

    async def plan(self, topic: str, start: Bound, end: Bound) -> list[PartitionRange]:
        name = self.physical(topic)
        heads = await self.conn.fetch(
            "SELECT partition, next_offset FROM eventlog.partition_heads WHERE topic = $1"
            " ORDER BY partition",
            name,
        )
        ranges = []
        for head in heads:
            partition, high = int(head["partition"]), int(head["next_offset"])
            low = 0  # the embedded log keeps everything
            found: dict[str, int | None] = {}
            for label, bound in (("start", start), ("end", end)):
                if bound.kind == "time":
                    found[label] = await self.conn.fetchval(
                        'SELECT min("offset") FROM eventlog.records WHERE topic = $1'
                        ' AND partition = $2 AND "offset" < $3 AND appended_at >= $4',
                        name,
                        partition,
                        high,
                        bound.time,
                    )
            first = _resolve(start, partition, low, high, found.get("start"), is_end=False)
            stop = _resolve(end, partition, low, high, found.get("end"), is_end=True)
            ranges.append(PartitionRange(topic, partition, first, max(stop, first)))
        return ranges

    async def read(
        self, ranges: Sequence[PartitionRange], batch_size: int = 2000
    ) -> AsyncIterator[Batch]:
        for r in ranges:
            position = r.start
            while True:
                rows = (
                    await self.conn.fetch(
                        'SELECT "offset", key, value, appended_at FROM eventlog.records'
                        ' WHERE topic = $1 AND partition = $2 AND "offset" >= $3'
                        ' AND "offset" < $4 ORDER BY "offset" LIMIT $5',
                        self.physical(r.topic),
                        r.partition,
                        position,
                        r.stop,
                        batch_size,
                    )
                    if position < r.stop
                    else []
                )
                records = [
                    LogRecord(
                        r.topic,
                        r.partition,
                        row["offset"],
                        row["appended_at"],
                        row["key"],
                        bytes(row["value"]),
                    )
                    for row in rows
                ]
                if records:
                    position = records[-1].offset + 1
                done = not records or position >= r.stop
                yield Batch(r.topic, r.partition, records, done)
                if done:
                    break


def source_from(
    *,
    kafka_bootstrap: str | None = None,
    eventlog_url: str | None = None,
    topic_prefix: str | None = None,
    prefer: Literal["kafka", "embedded"] | None = None,
) -> LogSource:
    """The source the arguments (or ``PLUGPAY_KAFKA_BOOTSTRAP`` / ``PLUGPAY_EVENTLOG_DATABASE_URL``
    / ``PLUGPAY_TOPIC_PREFIX``) select; Kafka when both are given unless ``prefer`` says."""
    kafka_bootstrap = kafka_bootstrap or os.environ.get("PLUGPAY_KAFKA_BOOTSTRAP")
    eventlog_url = eventlog_url or os.environ.get("PLUGPAY_EVENTLOG_DATABASE_URL")
    prefix = os.environ.get("PLUGPAY_TOPIC_PREFIX", "") if topic_prefix is None else topic_prefix
    if prefer == "embedded" or (prefer is None and not kafka_bootstrap and eventlog_url):
        if not eventlog_url:
            raise ValueError(
                "the embedded log needs --eventlog-url or PLUGPAY_EVENTLOG_DATABASE_URL"
            )
        return EmbeddedLogSource(eventlog_url, topic_prefix=prefix)
    if not kafka_bootstrap:
        raise ValueError(
            "no event log: give --kafka / PLUGPAY_KAFKA_BOOTSTRAP or --eventlog-url /"
            " PLUGPAY_EVENTLOG_DATABASE_URL"
        )
    return KafkaSource(kafka_bootstrap, topic_prefix=prefix)
