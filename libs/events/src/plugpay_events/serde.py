"""Bytes on the wire: an envelope is UTF-8 JSON; its routing facts are repeated in headers."""

from __future__ import annotations

from plugpay_events.envelope import Envelope
from plugpay_events.registry import EVENT_TYPES, UnknownEventType
from plugpay_events.topics import Topic

Headers = list[tuple[str, bytes]]


def encode(envelope: Envelope) -> bytes:
    """Serialise an envelope to the bytes stored in Kafka or the embedded log."""
    return envelope.model_dump_json().encode()


def decode(value: bytes) -> Envelope:
    """Parse bytes into an envelope (payload not yet validated against its event model)."""
    return Envelope.model_validate_json(value)


def headers_for(envelope: Envelope) -> Headers:
    """Headers let tools route and filter without parsing the value."""
    headers: Headers = [
        ("type", envelope.type.encode()),
        ("version", str(envelope.version).encode()),
        ("event_id", str(envelope.event_id).encode()),
        ("correlation_id", str(envelope.correlation_id).encode()),
    ]
    if envelope.trace_parent:
        # W3C trace context, so tracing-aware tools continue the producer's trace.
        headers.append(("traceparent", envelope.trace_parent.encode()))
    return headers


def topic_of(envelope: Envelope) -> Topic:
    """The topic an event type lives on."""
    cls = EVENT_TYPES.get(envelope.type)
    if cls is None:
        raise UnknownEventType(envelope.type)
    return cls.topic
