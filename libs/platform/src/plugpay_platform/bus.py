"""Choosing the event-bus adapter from settings: Kafka when an address is given."""

from __future__ import annotations

from plugpay_events.bus.embedded import EmbeddedEventBus
from plugpay_events.bus.kafka import KafkaEventBus
from plugpay_events.bus.port import EventBus

from plugpay_platform.settings import ServiceSettings


def build_event_bus(settings: ServiceSettings, client_id: str) -> EventBus:
    """The real adapter the settings select."""
    platform = settings.platform
    if platform.kafka_bootstrap:
        return KafkaEventBus(
            platform.kafka_bootstrap,
            topic_prefix=platform.topic_prefix,
            client_id=client_id,
            client_options=platform.kafka_client_options(),
        )
    return EmbeddedEventBus(settings.eventlog_url, topic_prefix=platform.topic_prefix)
