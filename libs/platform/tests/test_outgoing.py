"""Events leave every service one way: correlated with the request that caused them, or with
the consumed event that did (naming it as their cause)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from plugpay_events import Envelope
from plugpay_events.contracts.stations import StationConnected
from plugpay_platform.logging import correlation_id
from plugpay_platform.outgoing import envelopes, request_correlation_id

EVENT = StationConnected(
    station_id="ST-1",
    connected_at=datetime(2026, 12, 3, tzinfo=UTC),
    ocpp_version="1.6",
    gateway_instance="gw-1",
)


def test_events_carry_the_requests_correlation_id() -> None:
    cid = uuid.uuid4()
    token = correlation_id.set(str(cid))
    try:
        [envelope] = envelopes([EVENT], producer="test-svc")
    finally:
        correlation_id.reset(token)
    assert envelope.correlation_id == cid and envelope.causation_id is None
    assert envelope.producer == "test-svc" and envelope.event() == EVENT


def test_events_caused_by_an_event_carry_its_correlation_and_name_it() -> None:
    cause = Envelope.wrap(EVENT, producer="station-gateway")
    token = correlation_id.set(str(uuid.uuid4()))  # a consumer's cause wins over any request
    try:
        first, second = envelopes([EVENT, EVENT], producer="test-svc", caused_by=cause)
    finally:
        correlation_id.reset(token)
    assert first.correlation_id == second.correlation_id == cause.correlation_id
    assert first.causation_id == second.causation_id == cause.event_id


def test_outside_a_request_events_start_a_new_trace() -> None:
    assert request_correlation_id() is None
    token = correlation_id.set("not-a-uuid")  # a client's header that is no UUID
    try:
        assert request_correlation_id() is None
        one, two = envelopes([EVENT, EVENT], producer="test-svc")
    finally:
        correlation_id.reset(token)
    assert one.correlation_id != two.correlation_id
