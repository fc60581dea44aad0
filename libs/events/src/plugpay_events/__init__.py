"""Plugpay's event contracts and event bus.

Importing the package registers every event type for decoding.
"""

from plugpay_events import contracts
from plugpay_events.envelope import Envelope, Event
from plugpay_events.registry import EVENT_TYPES, decode_payload, upcast
from plugpay_events.topics import ALL_TOPICS, Topic
from plugpay_events.types import CurrencyCode, Money, UtcDatetime, WattHours, utc_now

__all__ = [
    "ALL_TOPICS",
    "EVENT_TYPES",
    "CurrencyCode",
    "Envelope",
    "Event",
    "Money",
    "Topic",
    "UtcDatetime",
    "WattHours",
    "contracts",
    "decode_payload",
    "upcast",
    "utc_now",
]
