"""Outgoing events: the one way a service puts its events in envelopes for the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from plugpay_events.envelope import Envelope, Event

from plugpay_platform.logging import correlation_id


def request_correlation_id() -> uuid.UUID | None:
    """The current HTTP request's correlation id, if it is a UUID (None outside a request)."""
    value = correlation_id.get()
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def envelopes(
    events: Iterable[Event], *, producer: str, caused_by: Envelope | None = None
) -> list[Envelope]:
    """Envelopes for ``events``: caused by a consumed envelope, they carry its correlation id
    and name it as their cause; otherwise they carry the current request's correlation id, so a
    trace follows an API call into the events it causes (a fresh id outside any request)."""
    cid = None if caused_by is not None else request_correlation_id()
    return [
        Envelope.wrap(e, producer=producer, caused_by=caused_by, correlation_id=cid) for e in events
    ]
