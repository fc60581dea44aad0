"""Each consumer's ``handles`` (app.py) lists exactly the events its effect acts on."""

from notification_svc import service
from plugpay_testing.dispatch import assert_handles_match_dispatch


def test_each_consumer_handles_what_its_effect_dispatches_on() -> None:
    assert_handles_match_dispatch(
        {
            service.learn_identity: service.IDENTITY_EVENTS,
            service.session_event: service.SESSION_EVENTS,
            service.billing_event: service.BILLING_EVENTS,
        }
    )
