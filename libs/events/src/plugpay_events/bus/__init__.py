"""The event-bus port and its adapters."""

from plugpay_events.bus.port import (
    Consumer,
    Delivery,
    EventBus,
    Handler,
    PoisonEvent,
    RetryPolicy,
)

__all__ = ["Consumer", "Delivery", "EventBus", "Handler", "PoisonEvent", "RetryPolicy"]
