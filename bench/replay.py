"""Session-store rebuild from Kafka vs a bare aiokafka consume of the same topics, same run.

    python bench/replay.py [--events 1000000]

Events come from plugpay_analytics' month generator (real contract classes in real envelopes,
the flow's order and causation: codes, scans, pricing, holds, starts, meter values, completions,
costs, bills, connector statuses), several seeds until ``--events`` are published, into an
isolated topic prefix ``benchreplay<run>.``. Then:

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

from common import KAFKA, PG, RESULTS, ROOT, SMOKE, load, write_result
from pyspy import PYSPY, summarise


async def _publish(prefix: str, target: int) -> dict[str, Any]:
    from plugpay_analytics.generator import generate_month
    from plugpay_events.bus.kafka import KafkaEventBus
    from session_svc.app import STORE_TOPICS

    bus = KafkaEventBus(KAFKA, client_id="bench-replay", topic_prefix=prefix)
    await bus.start()
    await bus.ensure_topics(STORE_TOPICS)
    published, seed, gen_s, pub_s = 0, 100, 0.0, 0.0
    stations = 2 if target < 20_000 else 25
    days = 2 if target < 20_000 else 31
    try:
        while published < target:
            t = time.perf_counter()
            month = generate_month(seed=seed, stations=stations, days=days, duplicate_rate=0.0)
            gen_s += time.perf_counter() - t
            seed += 1
            envelopes = month.envelopes[: target - published]
            t = time.perf_counter()
            for i in range(0, len(envelopes), 5000):
                await bus.publish(envelopes[i : i + 5000])
            pub_s += time.perf_counter() - t
            published += len(envelopes)
            print(f"replay: published {published:,}/{target:,}", file=sys.stderr)
    finally:
        await bus.stop()
    topics = [f"{prefix}{t.name}" if hasattr(t, "name") else str(t) for t in STORE_TOPICS]
    return {
        "published": published,
        "generate_s": round(gen_s, 1),
        "publish_s": round(pub_s, 1),
        "publish_events_per_s": round(published / pub_s) if pub_s else None,
        "topics": topics,
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


async def _db(name: str, drop: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


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
    # 1,000,000 is the number; on the 2-core machine rebuild applies a few hundred
    # events/s, so `make bench` runs 50,000 (BENCH_REPLAY_EVENTS to change it).
    p.add_argument(
        "--events",
        type=int,
        default=2_000 if SMOKE else int(os.environ.get("BENCH_REPLAY_EVENTS", 50_000)),
    )
    a = p.parse_args()
    before = load()
    prefix = f"benchreplay{uuid.uuid4().hex[:6]}."
    database = "sessions_benchreplay"
    try:
        pub = asyncio.run(_publish(prefix, a.events))
        bare = asyncio.run(_bare(pub["topics"]))
        asyncio.run(_db(database, drop=False))
        env = dict(os.environ)
        env.update(
            {
                "PLUGPAY_ENVIRONMENT": "development",
                "PLUGPAY_KAFKA_BOOTSTRAP": KAFKA,
                "PLUGPAY_TOPIC_PREFIX": prefix,
                "SESSION_SVC_DATABASE_URL": f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}"
                f"/{database}",
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
        asyncio.run(_db(database, drop=True))


if __name__ == "__main__":
    main()
