"""Each consumer's ``handles`` lists exactly the events its effect acts on."""

from plugpay_testing.dispatch import assert_handles_match_dispatch
from station_gateway import handlers


def test_each_consumer_handles_what_its_effect_dispatches_on() -> None:
    assert_handles_match_dispatch(
        {
            handlers.apply_registry_event: handlers.REGISTRY_EVENTS,
            handlers.session_event_handler: handlers.SESSION_EVENTS,
        }
    )
