"""Session-store rebuild from Kafka vs a bare aiokafka consume of the same topics, same run.

    python bench/replay.py [--events 1000000]

Events come from plugpay_analytics' month generator (real contract classes in real envelopes,
the flow's order and causation: codes, scans, pricing, holds, starts, meter values, completions,
costs, bills, connector statuses): one month of 10 stations (~39,000 events on session-svc's
topics), then copies of it with every id mapped to a new one and the stations renamed (a fleet
of 10 x copies stations over the same month) until ``--events`` are published, into an
isolated topic prefix ``benchreplay<run>.``, in full producer batches per partition (same
producer settings and partitioner as the bus). Then:

- bare: one aiokafka consumer reads every partition of session-svc's topics from offset 0 to
  the end (no decoding): records/s;
- rebuild: the real command, ``session-svc rebuild`` (its own process, fresh database
  sessions_benchreplay), whose progress line gives events/s applying and overall (reading and
  decoding the log included); we also time the whole command.
The topics and database are dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from typing import Any

from common import KAFKA, RESULTS, ROOT, SMOKE, create_database, drop_database, load, write_result
from pyspy import PYSPY, summarise

# What differs between copies of the month: every id, and the station names.
VARYING = re.compile(rb"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|NL-AMS-)")
STATION = b"NL-AMS-"
# A record as a template: (topic, key, value, headers) with each bytes split on VARYING.
Template = tuple[str, list[bytes], list[bytes], list[tuple[str, list[bytes]]]]


def _month(prefix: str, smoke: bool) -> list[Template]:
    """One generated month as Kafka records, as the bus sends them (key, value, headers),
    split into templates; only the events on session-svc's topics (pricing's are not read)."""
    from plugpay_analytics.generator import generate_month
    from plugpay_events import serde
    from session_svc.app import STORE_TOPICS

    stations, days = (2, 2) if smoke else (10, 31)
    month = generate_month(seed=100, stations=stations, days=days, duplicate_rate=0.0)
    return [
        (
            f"{prefix}{serde.topic_of(e).name}",
            VARYING.split(e.aggregate_id.encode()),
            VARYING.split(serde.encode(e)),
            [(h, VARYING.split(v)) for h, v in serde.headers_for(e)],
        )
        for e in month.envelopes
        if serde.topic_of(e) in STORE_TOPICS
    ]


def _fleet_copy(
    month: list[Template], copy: int
) -> list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]:
    """The month again at other stations: every id (sessions, events, users, organisations,
    holds, receipts) mapped one-to-one to a new one, station ids renamed. Copies share the
    month's timeline, so together they are one month of a fleet ``copies`` times as big."""
    mask = (copy * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFF  # changes only the node bits
    mapped: dict[bytes, bytes] = {STATION: b"NL-%03d-" % copy if copy else STATION}

    def fill(template: list[bytes]) -> bytes:
        if len(template) == 1:
            return template[0]
        parts = list(template)
        for i in range(1, len(parts), 2):
            token = parts[i]
            new = mapped.get(token)
            if new is None:
                new = mapped[token] = token[:24] + b"%012x" % (int(token[24:], 16) ^ mask)
            parts[i] = new
        return b"".join(parts)

    out = []
    for topic, key, value, headers in month:
        out.append(
            (
                topic,
                fill(key),
                fill(value),
                [(h, fill(v)) for h, v in headers],
            )
        )
    return out


async def _send_all(
    producer: Any, records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Send records in full batches per partition (the producer's own partitioner: the same
    partition for the same key as the bus), so no record waits for a round trip of its own."""
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    partitions: dict[str, list[int]] = {}
    chosen: dict[tuple[str, bytes], int] = {}
    batches: dict[tuple[str, int], Any] = {}
    sent = []
    for topic, key, value, headers in records:
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        where = chosen.get((topic, key))
        if where is None:
            where = chosen[(topic, key)] = partitioner(key, partitions[topic], partitions[topic])
        batch = batches.get((topic, where))
        if batch is None:
            batch = batches[(topic, where)] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            sent.append(await producer.send_batch(batch, topic, partition=where))
            batch = batches[(topic, where)] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=headers)
    for (topic, where), batch in batches.items():
        sent.append(await producer.send_batch(batch, topic, partition=where))
    await asyncio.gather(*sent)


async def _publish(prefix: str, target: int) -> dict[str, Any]:
    """Generate one month, then publish it and id-mapped copies of it until ``target``: a
    million generated events would take the generator ~10 minutes on this machine."""
    from aiokafka import AIOKafkaProducer
    from plugpay_events.bus.kafka import KafkaEventBus
    from session_svc.app import STORE_TOPICS

    bus = KafkaEventBus(KAFKA, client_id="bench-replay", topic_prefix=prefix)
    await bus.start()
    try:
        await bus.ensure_topics(STORE_TOPICS)
    finally:
        await bus.stop()
    t = time.perf_counter()
    month = _month(prefix, SMOKE or target < 20_000)
    gen_s = time.perf_counter() - t
    # The bus's producer settings (acks=all, idempotent).
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA,
        client_id="bench-replay",
        acks="all",
        enable_idempotence=True,
        max_batch_size=1 << 20,
    )
    await producer.start()
    published, copies, copy_s, pub_s = 0, 0, 0.0, 0.0
    try:
        while published < target:
            t = time.perf_counter()
            records = _fleet_copy(month, copies)[: target - published]
            copy_s += time.perf_counter() - t
            copies += 1
            t = time.perf_counter()
            await _send_all(producer, records)
            pub_s += time.perf_counter() - t
            published += len(records)
            print(f"replay: published {published:,}/{target:,}", file=sys.stderr)
    finally:
        await producer.stop()
    return {
        "published": published,
        "month_events": len(month),
        "fleet_copies": copies,
        "generate_s": round(gen_s, 1),
        "copy_s": round(copy_s, 1),
        "publish_s": round(pub_s, 1),
        "publish_events_per_s": round(published / pub_s) if pub_s else None,
        "topics": [f"{prefix}{t.name}" for t in STORE_TOPICS],
    }


async def _bare(topics: list[str]) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=KAFKA,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        assert tps, f"no partitions for {topics}"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        count, nbytes = 0, 0
        t = time.perf_counter()
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, messages in batches.items():
                count += len(messages)
                nbytes += sum(len(m.value or b"") for m in messages)
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        elapsed = time.perf_counter() - t
    finally:
        await consumer.stop()
    return {
        "records": count,
        "bytes": nbytes,
        "seconds": round(elapsed, 2),
        "events_per_s": round(count / elapsed),
    }


async def _drop_topics(prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


def main() -> None:
    p = argparse.ArgumentParser()
    # The number (BENCH_REPLAY_EVENTS to change it): publishing and rebuilding a
    # million events takes a few minutes on the 2-core machine.
    p.add_argument(
        "--events",
        type=int,
        default=2_000 if SMOKE else int(os.environ.get("BENCH_REPLAY_EVENTS", 1_000_000)),
    )
    a = p.parse_args()
    before = load()
    prefix = f"benchreplay{uuid.uuid4().hex[:6]}."
    database = "sessions_benchreplay"
    try:
        pub = asyncio.run(_publish(prefix, a.events))
        bare = asyncio.run(_bare(pub["topics"]))
        database_url = asyncio.run(create_database(database))
        env = dict(os.environ)
        env.update(
            {
                "PLUGPAY_ENVIRONMENT": "development",
                "PLUGPAY_KAFKA_BOOTSTRAP": KAFKA,
                "PLUGPAY_TOPIC_PREFIX": prefix,
                "SESSION_SVC_DATABASE_URL": database_url,
            }
        )
        t = time.perf_counter()
        cmd = [str(ROOT / ".venv" / "bin" / "session-svc"), "rebuild"]
        profile_txt = RESULTS / "profile-session-svc-rebuild.txt"
        if not SMOKE:  # sampled from outside without pausing it (--nonblocking)
            cmd = [
                *PYSPY,
                "record",
                "--nonblocking",
                "--format",
                "raw",
                "-o",
                str(profile_txt),
                "--",
                *cmd,
            ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - t
        last = [line for line in proc.stderr.splitlines() if "ev/s" in line]
        m = (
            re.search(
                r"([\d,]+)/([\d,]+) events \(([\d,]+) ev/s applying, ([\d,]+) ev/s overall, "
                r"read ([\d.]+)s",
                last[-1],
            )
            if last
            else None
        )
        rebuild: dict[str, Any] = {
            "returncode": proc.returncode,
            "wall_s": round(wall, 1),
            "progress_line": last[-1] if last else proc.stderr[-500:],
        }
        if m:
            applied = int(m.group(1).replace(",", ""))
            rebuild.update(
                {
                    "applied": applied,
                    "applying_events_per_s": int(m.group(3).replace(",", "")),
                    "overall_events_per_s": int(m.group(4).replace(",", "")),
                    "read_s": float(m.group(5)),
                    "command_events_per_s": round(applied / wall),
                }
            )
        ratio = (
            round(bare["events_per_s"] / rebuild["overall_events_per_s"], 1)
            if rebuild.get("overall_events_per_s")
            else None
        )
        if not SMOKE:
            rebuild["profile"] = summarise(profile_txt)
        write_result(
            "replay",
            {
                "events_target": a.events,
                "publish": pub,
                "bare_consume": bare,
                "rebuild": rebuild,
                "bare_over_rebuild": ratio,
            },
            before,
        )
        print(json.dumps({"bare": bare, "rebuild": rebuild, "ratio": ratio}), file=sys.stderr)
    finally:
        asyncio.run(_drop_topics(prefix))
        asyncio.run(drop_database(database))


if __name__ == "__main__":
    main()
