"""Each consumer's ``handles`` lists exactly the events its effect acts on: one left out would
be passed over without a transaction, and without a word."""

from plugpay_testing.dispatch import dispatched_event_classes
from pricing_svc import handlers


def test_each_consumer_handles_what_its_effect_dispatches_on() -> None:
    for effect, handles in (
        (handlers.on_identity_event, handlers.IDENTITY_EVENTS),
        (handlers.on_session_event, handlers.SESSION_EVENTS),
        (handlers.on_directory_event, handlers.DIRECTORY_EVENTS),
    ):
        assert dispatched_event_classes(effect) == set(handles), effect.__name__
