"""Each consumer's ``handles`` lists exactly the events its effect acts on: one left out would
be passed over without a transaction, and without a word."""

from notification_svc import service
from plugpay_testing.dispatch import dispatched_event_classes


def test_each_consumer_handles_what_its_effect_dispatches_on() -> None:
    for effect, handles in (
        (service.learn_identity, service.IDENTITY_EVENTS),
        (service.session_event, service.SESSION_EVENTS),
        (service.billing_event, service.BILLING_EVENTS),
    ):
        assert dispatched_event_classes(effect) == set(handles), effect.__name__
