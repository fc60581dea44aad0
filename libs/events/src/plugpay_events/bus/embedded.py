"""Embedded adapter: the event log as an append-only table in PostgreSQL.

Same semantics as Kafka, for the one-process default with no broker to run:
- records live in ``eventlog.records`` with gap-free offsets per (topic, partition); an append
  takes the partition's head row lock, so offsets become visible in commit order and a reader
  never skips one that commits late;
- partitions are chosen with Kafka's murmur2 partitioner, so the same key lands on the same
  partition number in both adapters;
- group members hold a PostgreSQL advisory lock per partition they consume, on their own
  connection: a member that dies loses its locks with its connection, and partitions are
  shared fairly among members that heart-beat in ``eventlog.group_members``;
- committed offsets live in ``eventlog.group_offsets``; LISTEN/NOTIFY wakes consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka.partitioner import murmur2

from plugpay_events import serde
from plugpay_events.bus.port import (
    EventBus,
    GroupMember,
    RawRecord,
    stop_task,
)
from plugpay_events.envelope import Envelope
from plugpay_events.topics import TOPICS_BY_NAME, Topic

log = logging.getLogger(__name__)

CHANNEL = "plugpay_eventlog"
MEMBER_TIMEOUT_S = 10.0

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS eventlog;
CREATE TABLE IF NOT EXISTS eventlog.partition_heads (
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS eventlog.records (
    topic text NOT NULL,
    partition int NOT NULL,
    "offset" bigint NOT NULL,
    key bytea,
    value bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '[]',
    appended_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS eventlog.group_offsets (
    group_id text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
CREATE TABLE IF NOT EXISTS eventlog.group_members (
    group_id text NOT NULL,
    member_id uuid NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, member_id)
);
"""


def asyncpg_dsn(url: str) -> str:
    """Accept SQLAlchemy-style URLs (postgresql+asyncpg://) as well as plain ones."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for keyed records."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


class EmbeddedEventBus(EventBus):
    """The event bus on an append-only PostgreSQL table."""

    def __init__(self, database_url: str, *, topic_prefix: str = "", pool_size: int = 5) -> None:
        super().__init__(topic_prefix=topic_prefix)
        self.dsn = asyncpg_dsn(database_url)
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._partitions: dict[str, int] = {}

    async def start(self) -> None:
        if self._pool is not None:
            return
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)
        # Serialise schema creation between processes starting at once.
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('eventlog.schema'))")
            await conn.execute(SCHEMA_SQL)

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("EmbeddedEventBus.start() was not called")
        return self._pool

    async def ensure_topics(self, topics: Sequence[Topic]) -> None:
        async with self.pool.acquire() as conn:
            for topic in topics:
                await conn.executemany(
                    "INSERT INTO eventlog.partition_heads (topic, partition) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    [(self.topic_name(topic), p) for p in range(topic.partitions)],
                )

    async def partitions_of(self, topic: str) -> int:
        if topic not in self._partitions:
            count = await self.pool.fetchval(
                "SELECT count(*) FROM eventlog.partition_heads WHERE topic = $1", topic
            )
            if not count:
                # Like Kafka with auto-create, an unknown topic is created with its defaults.
                base = TOPICS_BY_NAME.get(topic.removeprefix(self.topic_prefix))
                await self.ensure_topics(
                    [base if base else Topic(topic.removeprefix(self.topic_prefix), 1, "")]
                )
                return await self.partitions_of(topic)
            self._partitions[topic] = int(count)
        return int(self._partitions[topic])

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        rows: list[tuple[str, int, bytes | None, bytes, serde.Headers]] = []
        for e in envelopes:
            topic = self.topic_name(serde.topic_of(e))
            key = e.aggregate_id.encode()
            partition = partition_for(key, await self.partitions_of(topic))
            rows.append((topic, partition, key, serde.encode(e), serde.headers_for(e)))
        await self._append(rows)

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: serde.Headers
    ) -> None:
        partitions = await self.partitions_of(topic)
        partition = partition_for(key, partitions) if key else 0
        await self._append([(topic, partition, key, value, headers)])

    async def _append(
        self, rows: list[tuple[str, int, bytes | None, bytes, serde.Headers]]
    ) -> None:
        heads = sorted({(topic, partition) for topic, partition, *_ in rows})
        async with self.pool.acquire() as conn, conn.transaction():
            # Lock heads in a fixed order: concurrent publishers never deadlock.
            next_offsets: dict[tuple[str, int], int] = {}
            for topic, partition in heads:
                next_offsets[(topic, partition)] = await conn.fetchval(
                    "SELECT next_offset FROM eventlog.partition_heads"
                    " WHERE topic = $1 AND partition = $2 FOR UPDATE",
                    topic,
                    partition,
                )
            records = []
            for topic, partition, key, value, headers in rows:
                offset = next_offsets[(topic, partition)]
                next_offsets[(topic, partition)] = offset + 1
                encoded = json.dumps([[k, v.decode("utf-8", "replace")] for k, v in headers])
                records.append((topic, partition, offset, key, value, encoded))
            await conn.copy_records_to_table(
                "records",
                schema_name="eventlog",
                records=records,
                columns=["topic", "partition", "offset", "key", "value", "headers"],
            )
            await conn.executemany(
                "UPDATE eventlog.partition_heads SET next_offset = $3"
                " WHERE topic = $1 AND partition = $2",
                [(t, p, o) for (t, p), o in next_offsets.items()],
            )
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)

    async def read_topic(self, topic: str, *, timeout_s: float = 10.0) -> list[RawRecord]:
        rows = await self.pool.fetch(
            'SELECT partition, "offset", key, value, headers FROM eventlog.records'
            ' WHERE topic = $1 ORDER BY partition, "offset"',
            topic,
            timeout=timeout_s,
        )
        return [
            RawRecord(
                topic,
                r["partition"],
                r["offset"],
                r["key"],
                r["value"],
                tuple((k, v.encode()) for k, v in json.loads(r["headers"])),
            )
            for r in rows
        ]

    def _member_type(self) -> type[EmbeddedConsumer]:
        return EmbeddedConsumer


class EmbeddedConsumer(GroupMember):
    """A consumer-group member on the embedded log."""

    bus: EmbeddedEventBus
    batch_size = 500
    poll_interval_s = 1.0

    def __init__(self, *args: Any) -> None:  # GroupMember's, as EventBus.consumer passes them
        super().__init__(*args)
        self.member_id = uuid.uuid4()
        self.owned: set[tuple[str, int]] = set()
        self._conn: asyncpg.Connection | None = None
        self._wakeup = asyncio.Event()

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self.bus.dsn)
        await self._conn.add_listener(CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._run(), name=f"embedded-consumer-{self.group}")

    def _on_notify(self, *_: Any) -> None:
        self._wakeup.set()

    async def _rebalance(self, conn: asyncpg.Connection) -> None:
        """Heart-beat, then hold locks on this member's fair share of partitions."""
        await conn.execute(
            "INSERT INTO eventlog.group_members (group_id, member_id) VALUES ($1, $2)"
            " ON CONFLICT (group_id, member_id) DO UPDATE SET heartbeat_at = now()",
            self.group,
            self.member_id,
        )
        members = [
            r["member_id"]
            for r in await conn.fetch(
                "SELECT member_id FROM eventlog.group_members WHERE group_id = $1"
                " AND heartbeat_at > now() - make_interval(secs => $2) ORDER BY member_id",
                self.group,
                MEMBER_TIMEOUT_S,
            )
        ]
        index = members.index(self.member_id) if self.member_id in members else 0
        wanted: set[tuple[str, int]] = set()
        slot = 0
        for topic in self.topics:
            for partition in range(await self.bus.partitions_of(topic)):
                if slot % max(len(members), 1) == index:
                    wanted.add((topic, partition))
                slot += 1
        for topic, partition in self.owned - wanted:
            await conn.execute(
                "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))",
                self.group,
                f"{topic}:{partition}",
            )
        self.owned &= wanted
        for topic, partition in wanted - self.owned:
            if await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))",
                self.group,
                f"{topic}:{partition}",
            ):
                self.owned.add((topic, partition))

    async def _poll_partition(self, topic: str, partition: int) -> int:
        """Handle the next batch of one owned partition; returns how many records."""
        pool = self.bus.pool
        position = await pool.fetchval(
            "SELECT next_offset FROM eventlog.group_offsets"
            " WHERE group_id = $1 AND topic = $2 AND partition = $3",
            self.group,
            topic,
            partition,
        )
        rows = await pool.fetch(
            'SELECT "offset", key, value FROM eventlog.records'
            ' WHERE topic = $1 AND partition = $2 AND "offset" >= $3 ORDER BY "offset" LIMIT $4',
            topic,
            partition,
            position or 0,
            self.batch_size,
        )
        records = [RawRecord(topic, partition, r["offset"], r["key"], r["value"]) for r in rows]

        async def commit(next_offset: int) -> None:
            await self._commit(topic, partition, next_offset)

        await self._deliver(records, commit)
        return len(rows)

    async def _commit(self, topic: str, partition: int, next_offset: int) -> None:
        await self.bus.pool.execute(
            "INSERT INTO eventlog.group_offsets (group_id, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (group_id, topic, partition)"
            " DO UPDATE SET next_offset = EXCLUDED.next_offset",
            self.group,
            topic,
            partition,
            next_offset,
        )

    async def _run(self) -> None:
        assert self._conn is not None
        last_rebalance = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                if loop.time() - last_rebalance > MEMBER_TIMEOUT_S / 4 or not self.owned:
                    await self._rebalance(self._conn)
                    last_rebalance = loop.time()
                self._wakeup.clear()
                handled = 0
                for topic, partition in sorted(self.owned):
                    handled += await self._poll_partition(topic, partition)
                if handled == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A lost connection or a restarting PostgreSQL: back off and carry on.
                log.exception("%s: embedded consumer loop failed; retrying", self.group)
                await asyncio.sleep(1.0)
                await self._reconnect()

    async def _reconnect(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            return
        self.owned.clear()  # the locks died with the connection
        with contextlib.suppress(Exception):
            self._conn = await asyncpg.connect(self.bus.dsn)
            await self._conn.add_listener(CHANNEL, self._on_notify)

    async def stop(self, grace_s: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        await stop_task(self._task, grace_s)
        self._task = None
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(Exception):
                await self._conn.execute(
                    "DELETE FROM eventlog.group_members WHERE group_id = $1 AND member_id = $2",
                    self.group,
                    self.member_id,
                )
            await self._conn.close()
        self._conn = None
        self.owned.clear()
