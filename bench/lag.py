"""Consumer-group lag of the bench stack (records behind the end of each topic), for diagnosis."""

from __future__ import annotations

import asyncio
import json

from common import KAFKA, TOPIC_PREFIX


async def lag() -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA)
    await consumer.start()
    out: dict[str, int] = {}
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(TOPIC_PREFIX)]
        for group in sorted(groups):
            offsets = await admin.list_consumer_group_offsets(group)
            if not offsets:
                continue
            ends = await consumer.end_offsets(list(offsets))
            out[group] = sum(max(0, ends[tp] - meta.offset) for tp, meta in offsets.items())
    finally:
        await consumer.stop()
        await admin.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(lag()), indent=1))


def wait_drained(timeout_s: float = 90.0) -> dict[str, int]:
    """Wait (bounded) until every consumer group of the bench stack caught up; the residual lag."""
    import time

    deadline = time.time() + timeout_s
    while True:
        current = asyncio.run(lag())
        if sum(current.values()) == 0 or time.time() > deadline:
            return current
        time.sleep(2)
