"""Redelivery: re-feed the last N records of every topic of the isolated stack (the same
envelopes, same keys and headers, published again on their topics) to every consumer group,
and compare every service's database before and after — nothing may change except inbox
bookkeeping; no new outbox events, nothing dead-lettered."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import support
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from plugpay_testing import eventually

pytestmark = [pytest.mark.infra, pytest.mark.kafka]
DATABASES = [db for _port, db, _prefix in support.SERVICES.values()]
# inbox rows of the redelivered ids already exist; presence/heartbeat rows tick by themselves.
SKIP = {
    "inbox",
    "outbox",
    "gateway_instances",
    "station_presence",
    "rate_limit_hits",
    "login_throttle",
    "alembic_version",
    "timers",
}


async def _topics(consumer: AIOKafkaConsumer) -> list[str]:
    topics = await consumer.topics()
    return sorted(t for t in topics if t.startswith(support.TOPIC_PREFIX) and "deadletter" not in t)


async def _end_offsets(consumer: AIOKafkaConsumer, topics: list[str]) -> dict[TopicPartition, int]:
    metadata = await consumer._client.fetch_all_metadata()  # the consumer subscribes to nothing
    parts = [TopicPartition(t, p) for t in topics for p in metadata.partitions_for_topic(t) or ()]
    return dict(await consumer.end_offsets(parts)) if parts else {}


async def _groups_caught_up(admin: AIOKafkaAdminClient, ends: dict[TopicPartition, int]) -> bool:
    groups = [
        g[0] for g in await admin.list_consumer_groups() if g[0].startswith(support.TOPIC_PREFIX)
    ]
    for group in groups:
        offsets = await admin.list_consumer_group_offsets(group)
        for tp, meta in offsets.items():
            if tp in ends and meta.offset < ends[tp]:
                return False
    return True


async def _snapshots() -> dict[str, Any]:
    snap = {db: await support.snapshot(db, skip=SKIP) for db in DATABASES}
    for db in DATABASES:
        rows = await support.query(db, "SELECT count(*) AS n FROM outbox")
        snap[db]["outbox rows"] = [str(rows[0]["n"])]
    return snap


async def _unpublished() -> int:
    """Outbox rows no relay has published yet, over every service's database."""
    pending = 0
    for db in DATABASES:
        rows = await support.query(
            db, "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL"
        )
        pending += int(rows[0]["n"])
    return pending


async def _armed_timers() -> int:
    """session-svc's timers still to fire (a code left by an earlier test expires by itself)."""
    rows = await support.query(
        support.SERVICES["session-svc"][1], "SELECT count(*) AS n FROM timers"
    )
    return int(rows[0]["n"])


async def _quiet(ends_of: Any, admin: AIOKafkaAdminClient, timeout_s: float) -> None:
    """Wait until the stack is idle: no timer left to fire, every group has consumed every
    record, no outbox row waits for its relay, and no record was appended meanwhile (so no
    handler is still writing)."""

    async def idle() -> bool:
        ends = await ends_of()
        return (
            await _armed_timers() == 0
            and await _groups_caught_up(admin, ends)
            and await _unpublished() == 0
            and await ends_of() == ends
        )

    await eventually(
        idle,
        within=timeout_s,
        what="no armed timers, consumer groups caught up, outboxes drained, no new records",
        every=1.0,
    )


async def test_redelivered_events_change_nothing(world: support.World, long_run: bool) -> None:
    n = 500 if long_run else 60
    consumer = AIOKafkaConsumer(bootstrap_servers=support.KAFKA, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=support.KAFKA, acks="all")
    admin = AIOKafkaAdminClient(bootstrap_servers=support.KAFKA)
    await consumer.start()
    await producer.start()
    await admin.start()
    try:
        topics = await _topics(consumer)
        assert topics, "no topics of the isolated stack"

        async def ends() -> dict[TopicPartition, int]:
            return await _end_offsets(consumer, topics)

        # Codes live 40 s on the isolated stack (support.TIMEOUTS): one just issued may expire.
        await _quiet(ends, admin, 120)
        before = await _snapshots()
        dead_before = await _end_offsets(consumer, [f"{support.TOPIC_PREFIX}plugpay.deadletter"])
        # read the last n records of every partition
        last = await ends()
        consumer.assign(list(last))
        for tp, end in last.items():
            consumer.seek(tp, max(0, end - n))
        records: list[Any] = []
        pending = {tp for tp, end in last.items() if end > 0}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                for m in msgs:
                    if m.offset < last[tp]:
                        records.append(m)
                    if m.offset >= last[tp] - 1:
                        pending.discard(tp)
        assert records
        for m in records:
            await producer.send_and_wait(
                m.topic, value=m.value, key=m.key, headers=list(m.headers), partition=m.partition
            )
        await _quiet(ends, admin, 120)
        after = await _snapshots()
        dead_after = await _end_offsets(consumer, [f"{support.TOPIC_PREFIX}plugpay.deadletter"])
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()
    changed = {
        f"{db}.{table}": {
            "gone": sorted(set(rows) - set(after[db].get(table, [])))[:3],
            "new": sorted(set(after[db].get(table, [])) - set(rows))[:3],
        }
        for db in DATABASES
        for table, rows in before[db].items()
        if after[db].get(table) != rows
    }
    per_topic: dict[str, int] = {}
    for m in records:
        per_topic[m.topic] = per_topic.get(m.topic, 0) + 1
    summary = {
        "redelivered": len(records),
        "per_topic": per_topic,
        "tables_compared": sum(len(s) for s in before.values()),
        "changed": len(changed),
    }
    print(f"redelivery: {summary}")
    (support.ROOT / ".local" / "reliability" / "redelivery.json").write_text(json.dumps(summary))
    assert not changed, json.dumps(changed, default=str)[:4000]
    assert dead_after == dead_before, "redelivered records were dead-lettered"
