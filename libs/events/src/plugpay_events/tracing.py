"""W3C trace context carried by events, so one trace follows a session across services.

The producer side stamps the current ``traceparent`` on an envelope when it is written to the
outbox (``Outbox.add``), inside the request or handler that caused it; the relay publishes it
later, outside that context, as the envelope's ``trace_parent`` field and as a ``traceparent``
record header. The consumer side reads it back (header first, then the field) and starts its
span as a child of it. Only ``opentelemetry-api`` is needed here: without an SDK configured
there is no current span and nothing is stamped.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from plugpay_events.envelope import Envelope

TRACEPARENT_HEADER = "traceparent"

_propagator = TraceContextTextMapPropagator()


def current_traceparent(context: Context | None = None) -> str | None:
    """The W3C ``traceparent`` of the current (or given) span, or None when there is none."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    return carrier.get(TRACEPARENT_HEADER)


def stamp(envelope: Envelope, context: Context | None = None) -> Envelope:
    """The envelope with the current trace parent recorded, unless it already carries one."""
    if envelope.trace_parent is not None:
        return envelope
    parent = current_traceparent(context)
    if parent is None:
        return envelope
    return envelope.model_copy(update={"trace_parent": parent})


def traceparent_of(envelope: Envelope, headers: Iterable[tuple[str, bytes]] = ()) -> str | None:
    """Where a delivered event's trace continues: the record header, else the envelope field."""
    for key, value in headers:
        if key == TRACEPARENT_HEADER:
            return value.decode("ascii", "replace")
    return envelope.trace_parent


def parent_context(traceparent: str | None) -> Context | None:
    """An OpenTelemetry context whose remote parent is ``traceparent`` (None if absent/invalid)."""
    if not traceparent:
        return None
    context = _propagator.extract({TRACEPARENT_HEADER: traceparent})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context
