"""The event-bus port and its adapters."""

from plugpay_events.bus.port import (
    BatchHandler,
    Consumer,
    Delivery,
    EventBus,
    Handler,
    PoisonEvent,
    RetryPolicy,
)

__all__ = [
    "BatchHandler",
    "Consumer",
    "Delivery",
    "EventBus",
    "Handler",
    "PoisonEvent",
    "RetryPolicy",
]
