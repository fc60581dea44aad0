"""The floor: the same Kafka round trips and PostgreSQL commits a scan needs to reach the
charge point, and nothing else (no HTTP, no validation, no business logic, no ORM).

docs/flow.md, scan → start, counted:
  session-svc  commit (scan + outbox row)  → relay: commit (mark published) + produce
  pricing-svc  consume → commit (inbox+state+outbox) → relay: commit + produce, offset commit
  billing-svc  consume → commit → relay: commit + produce, offset commit
  gateway      consume → commit → one WebSocket frame to the station, offset commit
= 7 PostgreSQL commits, 3 produce→consume hops (acks=all, idempotent producer, read_committed
consumers in groups with manual offset commits, as libs/events' Kafka adapter), 1 WebSocket send.

Open loop at the same arrival rates as the real benchmark; latency from the planned time to
the WebSocket client receiving the frame. Runs in its own process.

    python bench/floor.py --rates 1,2,5,10,50,100,200 --durations 20,20,20,20,10,5,3 --update
re-measures only the floor and rewrites the floor columns of bench/results/scan_to_start.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import time
import uuid
from typing import Any

from common import KAFKA, PG


async def _floor(rate: float, duration_s: float) -> dict[str, Any]:
    import asyncpg
    import websockets
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    run = uuid.uuid4().hex[:8]
    topics = [f"bench.floor.{run}.{n}" for n in ("scanned", "priced", "authorized")]
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    await admin.create_topics([NewTopic(t, 3, 1) for t in topics])
    pool = await asyncpg.create_pool(f"{PG}/postgres", min_size=4, max_size=8)
    table = f"floor_{run}"
    await pool.execute(
        f"CREATE UNLOGGED TABLE IF NOT EXISTS {table} (id uuid PRIMARY KEY, "
        "stage int, published boolean DEFAULT false)"
    )
    # Logged like the services' tables: recreate as a normal table.
    await pool.execute(f"ALTER TABLE {table} SET LOGGED")
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, linger_ms=1
    )
    await producer.start()
    received: dict[str, float] = {}
    planned_at: dict[str, float] = {}
    got_all = asyncio.Event()
    n = int(rate * duration_s)

    async def on_client(ws: Any) -> None:
        async for frame in ws:
            received[json.loads(frame)["id"]] = time.time()
            if len(received) >= n:
                got_all.set()

    server_ws: list[Any] = []
    connected = asyncio.Event()

    async def handler(ws: Any) -> None:
        server_ws.append(ws)
        connected.set()
        await ws.wait_closed()

    server = await websockets.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = await websockets.connect(f"ws://127.0.0.1:{port}")
    client_task = asyncio.create_task(on_client(client))
    await connected.wait()

    async def commit_and_relay(mid: str, stage: int, topic: str | None) -> None:
        async with pool.acquire() as c:
            await c.execute(
                f"INSERT INTO {table} (id, stage) VALUES ($1, $2)",  # noqa: S608 (our own table)
                uuid.uuid5(uuid.NAMESPACE_OID, f"{mid}:{stage}"),
                stage,
            )
        if topic is None:
            return
        async with pool.acquire() as c, c.transaction():
            await producer.send_and_wait(topic, mid.encode(), key=mid.encode())
            await c.execute(
                f"UPDATE {table} SET published = true WHERE id = $1",  # noqa: S608 (our own table)
                uuid.uuid5(uuid.NAMESPACE_OID, f"{mid}:{stage}"),
            )

    async def stage(src: str, dst: str | None, number: int) -> None:
        consumer = AIOKafkaConsumer(
            src,
            bootstrap_servers=KAFKA,
            group_id=f"floor-{run}-{number}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)

                async def handle(mid: str) -> None:
                    await commit_and_relay(mid, number, dst)
                    if dst is None:
                        await server_ws[0].send(json.dumps({"id": mid}))

                # Records of a fetch are handled concurrently (a pool of 8 connections): the
                # floor is what the transport allows, not what one sequential loop does.
                await asyncio.gather(
                    *(handle(m.value.decode()) for messages in batches.values() for m in messages)
                )
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()

    stages = [
        asyncio.create_task(stage(topics[0], topics[1], 1)),
        asyncio.create_task(stage(topics[1], topics[2], 2)),
        asyncio.create_task(stage(topics[2], None, 3)),
    ]
    await asyncio.sleep(3)  # consumers joined their groups
    t0 = time.time() + 0.5

    async def scan(i: int) -> None:
        planned = t0 + i / rate
        await asyncio.sleep(max(0.0, planned - time.time()))
        mid = f"{i}"
        planned_at[mid] = planned
        await commit_and_relay(mid, 0, topics[0])

    await asyncio.gather(*(scan(i) for i in range(n)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(got_all.wait(), 30)
    latencies = [(received[m] - planned_at[m]) * 1000 for m in received if m in planned_at]
    for t in stages:
        t.cancel()
    await asyncio.gather(*stages, return_exceptions=True)
    client_task.cancel()
    await client.close()
    server.close()
    await producer.stop()
    await pool.execute(f"DROP TABLE {table}")
    await pool.close()
    await admin.delete_topics(topics)
    await admin.close()
    return {
        "latency_ms": latencies,
        "scans": n,
        "lost": n - len(latencies),
        "pg_commits_per_scan": 7,
        "kafka_hops_per_scan": 3,
    }


def _entry(rate: float, duration_s: float, q: Any) -> None:
    q.put(asyncio.run(_floor(rate, duration_s)))


def run_floor(rate: float, duration_s: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_entry, args=(rate, duration_s, q), daemon=True)
    p.start()
    out = q.get(timeout=duration_s + 120)
    p.join(10)
    return out


def main() -> None:
    import argparse
    import sys

    from common import RESULTS, load, percentiles

    p = argparse.ArgumentParser()
    p.add_argument("--rates", default="20")
    p.add_argument("--durations", default="3")
    p.add_argument("--update", action="store_true")
    a = p.parse_args()
    rates = [float(r) for r in a.rates.split(",")]
    durations = [float(d) for d in a.durations.split(",")]
    durations += [durations[-1]] * (len(rates) - len(durations))
    path = RESULTS / "scan_to_start.json"
    doc = json.loads(path.read_text()) if a.update else None
    for rate, duration in zip(rates, durations, strict=True):
        step_load = load()
        r = run_floor(rate, duration)
        fl = percentiles(r["latency_ms"])
        print(rate, fl, "lost", r["lost"], "load", step_load, file=sys.stderr)
        for s in (doc or {}).get("steps", []):
            if s["rate_per_s"] == rate:
                s["floor_ms"], s["floor_lost"], s["floor_load"] = fl, r["lost"], step_load
                p50 = s["scan_to_start_ms"]["p50"]
                s["p50_vs_floor"] = round(p50 / fl["p50"], 2) if p50 and fl["p50"] else None
    if doc is not None:
        doc["floor_rerun"] = (
            "floor re-measured separately with concurrent handling "
            f"at {time.strftime('%H:%M:%SZ', time.gmtime())}"
        )
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
