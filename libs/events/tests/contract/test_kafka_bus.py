"""The bus contract on Apache Kafka."""

from collections.abc import Callable

import pytest
from plugpay_events.bus.kafka import KafkaEventBus
from plugpay_events.bus.port import EventBus

from .bus_contract import BusContract


class TestKafkaBus(BusContract):
    @pytest.fixture
    def make_bus(self, kafka: str, topic_prefix: str) -> Callable[[], EventBus]:
        return lambda: KafkaEventBus(kafka, topic_prefix=topic_prefix)
