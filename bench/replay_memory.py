"""The session-store rebuild without Kafka: ``bench/replay.py``'s log, served from memory.

    python bench/replay_memory.py [--events 200000] [--rounds 1]

The same generated month and id-mapped fleet copies as ``bench/replay.py``, partitioned by
key as the bus partitions them, handed to the real ``rebuild_store`` by a bus whose
``read_topic`` returns them from memory; a fresh database (sessions_benchreplaymem) each
round. It measures decoding, folding and writing (what the rebuild itself costs) when Kafka
is busy or down, and prints each round's progress line, wall and CPU seconds and the load;
it writes no result file (``replay.py`` is the benchmark of record). To compare two versions
under the same load, run them in turns (e.g. one with PYTHONPATH pointing at a copy of the
other's packages).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from common import create_database, drop_database
from replay import _fleet_copy, _month

DATABASE = "sessions_benchreplaymem"
PREFIX = "benchreplaymem."


def _records(target: int) -> dict[str, list[Any]]:
    from aiokafka.partitioner import DefaultPartitioner
    from plugpay_events.bus.port import RawRecord
    from session_svc.app import STORE_TOPICS

    month = _month(PREFIX, target < 20_000)
    partitions = {f"{PREFIX}{t.name}": list(range(t.partitions)) for t in STORE_TOPICS}
    partitioner = DefaultPartitioner()
    log: dict[str, list[Any]] = {name: [] for name in partitions}
    offsets: dict[tuple[str, int], int] = {}
    made, copy = 0, 0
    while made < target:
        for topic, key, value, headers in _fleet_copy(month, copy)[: target - made]:
            where = partitioner(key, partitions[topic], partitions[topic])
            offset = offsets[(topic, where)] = offsets.get((topic, where), -1) + 1
            log[topic].append(RawRecord(topic, where, offset, key, value, tuple(headers)))
            made += 1
        copy += 1
    return log


async def _round(log: dict[str, list[Any]]) -> str:
    from plugpay_events.bus.recorded import RecordedLog
    from plugpay_platform.database import Database
    from plugpay_platform.migrations import upgrade_to_head
    from session_svc.app import MIGRATIONS
    from session_svc.rebuild import rebuild_store
    from session_svc.settings import Settings
    from session_svc.tables import outbox_tables

    url = await create_database(DATABASE)
    try:
        settings = Settings(database_url=url)
        await upgrade_to_head(MIGRATIONS, url)
        database = Database(url)
        recorded = RecordedLog(log, topic_prefix=PREFIX)  # sorted once, outside the timing
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            progress = await rebuild_store(recorded, database, outbox_tables, settings)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await database.dispose()
    finally:
        await drop_database(DATABASE)
    load = os.getloadavg()[0]
    return f"{progress.line()}; wall {wall:.1f} s, CPU {cpu:.1f} s, load {load:.1f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args()
    os.environ.setdefault("PLUGPAY_ENVIRONMENT", "development")
    log = _records(a.events)
    for _ in range(a.rounds):
        print(asyncio.run(_round(log)), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
