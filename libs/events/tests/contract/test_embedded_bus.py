"""The bus contract on the embedded adapter (an append-only PostgreSQL table)."""

from collections.abc import Callable

import pytest
from plugpay_events.bus.embedded import EmbeddedEventBus
from plugpay_events.bus.port import EventBus

from .bus_contract import BusContract


class TestEmbeddedBus(BusContract):
    @pytest.fixture
    def make_bus(self, database_url: str, topic_prefix: str) -> Callable[[], EventBus]:
        return lambda: EmbeddedEventBus(database_url, topic_prefix=topic_prefix)
