"""Each consumer's ``handles`` lists exactly the events its effect acts on."""

from billing_svc import handlers
from plugpay_testing.dispatch import assert_handles_match_dispatch


def test_each_consumer_handles_what_its_effect_dispatches_on() -> None:
    assert_handles_match_dispatch(
        {
            handlers.session_handler: handlers.SESSION_EVENTS,
            handlers.identity_effect: handlers.IDENTITY_EVENTS,
        }
    )
