"""The envelope every event travels in, and the base class of every event payload."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from plugpay_events.topics import Topic
from plugpay_events.types import UtcDatetime, utc_now


class Event(BaseModel):
    """Base of every event payload: frozen, strict about unknown fields.

    Subclasses set ``type`` (stable name), ``version`` (bumped with an upcaster), ``topic`` and
    ``aggregate_field`` (the payload field whose value keys the event, so one aggregate's
    events stay in order on one partition).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    version: ClassVar[int] = 1
    topic: ClassVar[Topic]
    aggregate_field: ClassVar[str]

    def aggregate_id(self) -> str:
        """The Kafka key of this event."""
        return str(getattr(self, self.aggregate_field))


class Envelope(BaseModel):
    """Metadata around one event; ``payload`` is the event's JSON form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = Field(ge=1)
    occurred_at: UtcDatetime = Field(default_factory=utc_now)
    aggregate_id: str = Field(min_length=1, max_length=200)
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    producer: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any]
    # W3C traceparent of the span that wrote the event (plugpay_events.tracing); optional.
    trace_parent: str | None = Field(default=None, max_length=256)

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        producer: str,
        caused_by: Envelope | None = None,
        correlation_id: uuid.UUID | None = None,
        occurred_at: UtcDatetime | None = None,
    ) -> Self:
        """Put ``event`` in an envelope; a caused_by envelope carries its correlation along."""
        if correlation_id is None:
            correlation_id = caused_by.correlation_id if caused_by else uuid.uuid4()
        return cls(
            type=event.type,
            version=event.version,
            aggregate_id=event.aggregate_id(),
            correlation_id=correlation_id,
            causation_id=caused_by.event_id if caused_by else None,
            producer=producer,
            payload=event.model_dump(mode="json"),
            **({"occurred_at": occurred_at} if occurred_at else {}),
        )

    def event(self) -> Event:
        """Decode the payload into its typed event, upcasting older versions first."""
        from plugpay_events.registry import decode_payload

        return decode_payload(self.type, self.version, self.payload)
