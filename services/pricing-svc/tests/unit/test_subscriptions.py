"""Each consumer's ``handles`` lists exactly the events its effect acts on."""

from plugpay_testing.dispatch import assert_handles_match_dispatch
from pricing_svc import handlers


def test_each_consumer_handles_what_its_effect_dispatches_on() -> None:
    assert_handles_match_dispatch(
        {
            handlers.on_identity_event: handlers.IDENTITY_EVENTS,
            handlers.on_session_event: handlers.SESSION_EVENTS,
            handlers.on_directory_event: handlers.DIRECTORY_EVENTS,
        }
    )
