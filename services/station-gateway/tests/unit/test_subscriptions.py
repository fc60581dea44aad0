"""Each consumer's ``handles`` lists exactly the events its effect acts on: one left out would
be passed over without a transaction, and without a word."""

from plugpay_testing.dispatch import dispatched_event_classes
from station_gateway import handlers


def test_each_consumer_handles_what_its_effect_dispatches_on() -> None:
    registry = dispatched_event_classes(handlers.apply_registry_event)
    assert registry == set(handlers.REGISTRY_EVENTS)
    sessions = dispatched_event_classes(handlers.session_event_handler)
    assert sessions == set(handlers.SESSION_EVENTS)
