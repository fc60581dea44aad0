"""The bus contract on Apache Kafka, and how its consumers commit offsets."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from plugpay_events.bus.kafka import KafkaEventBus
from plugpay_events.bus.port import EventBus
from plugpay_events.topics import DEAD_LETTER, SESSIONS
from plugpay_testing import eventually

from .bus_contract import WAIT_S, BusContract, Recorder, stop_requested


class TestKafkaBus(BusContract):
    @pytest.fixture
    def make_bus(self, kafka: str, topic_prefix: str) -> Callable[[], EventBus]:
        return lambda: KafkaEventBus(kafka, topic_prefix=topic_prefix)

    async def test_a_consumer_that_falls_idle_commits_what_it_handled(
        self, kafka: str, topic_prefix: str, consumers: Any
    ) -> None:
        # Busy, this consumer would commit once an hour; once its partitions are quiet it
        # commits at once, so a group that has caught up shows no lag.
        bus = KafkaEventBus(kafka, topic_prefix=topic_prefix, commit_interval_s=3600)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await bus.start()
        await admin.start()
        try:
            await bus.ensure_topics([SESSIONS, DEAD_LETTER])
            sent = [stop_requested(uuid.uuid4(), i) for i in range(20)]
            recorder = Recorder()
            await consumers(bus, "idle-commit", recorder)
            # The first fetch commits at once; the second only because the consumer fell idle.
            for part in (sent[:10], sent[10:]):
                await bus.publish(part)
                ids = {e.event_id for e in part}
                await eventually(lambda ids=ids: set(recorder.ids()) >= ids, WAIT_S)

            async def committed() -> int:
                offsets = await admin.list_consumer_group_offsets(f"{topic_prefix}idle-commit")
                return sum(max(o.offset, 0) for o in offsets.values())

            async def all_committed() -> bool:
                return await committed() == len(sent)

            await eventually(all_committed, WAIT_S, "every handled offset committed")
        finally:
            await admin.close()
            await bus.stop()
