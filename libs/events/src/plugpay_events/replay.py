"""Rebuilding a projection from the event log: drop it, replay its topics from offset 0.

Any read model (session-svc's store today; pricing's and billing's views later) implements
``Projection``; ``rebuild`` does the rest: reads every record of the topics, decodes them,
merges the partitions into one stream, feeds the projection in batches and reports progress.

Order: each partition stays in offset order (so one aggregate's events stay in order, as every
aggregate is keyed to one partition); across partitions and topics the stream is merged by
``occurred_at``, which approximates the order the live consumers saw. A projection must
therefore not depend on the relative order of events of different keys or topics (the live
consumers do not guarantee one either).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import ValidationError

from plugpay_events import serde
from plugpay_events.bus.port import EventBus, RawRecord
from plugpay_events.envelope import Envelope
from plugpay_events.registry import UnknownEventType, UnsupportedEventVersion
from plugpay_events.topics import Topic

log = logging.getLogger(__name__)


class Projection(Protocol):
    """A read model that can be rebuilt from the log."""

    name: str

    async def reset(self) -> None:
        """Empty the read model (and forget which events it handled); take any lock that keeps
        live writers out until ``close``."""

    async def apply(self, envelope: Envelope) -> None:
        """Apply one event (it may be buffered until ``flush``)."""

    async def flush(self) -> None:
        """Make everything applied so far durable."""

    async def close(self) -> None:
        """Release what ``reset`` took; called whether the rebuild succeeded or not."""


@dataclass
class ReplayProgress:
    """How far a rebuild got."""

    projection: str
    total: int = 0
    applied: int = 0
    undecodable: int = 0
    read_s: float = 0.0
    apply_s: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def events_per_s(self) -> float:
        """Events applied per second of applying (reading the log excluded)."""
        return self.applied / self.apply_s if self.apply_s > 0 else 0.0

    @property
    def overall_events_per_s(self) -> float:
        """Events per second including reading and decoding the log."""
        elapsed = self.read_s + self.apply_s
        return self.applied / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """One human line for a terminal or a log."""
        return (
            f"{self.projection}: {self.applied}/{self.total} events "
            f"({self.events_per_s:,.0f} ev/s applying, {self.overall_events_per_s:,.0f} ev/s "
            f"overall, read {self.read_s:.1f}s, {self.undecodable} undecodable skipped)"
        )


def _decode(records: Sequence[RawRecord], progress: ReplayProgress) -> list[Envelope]:
    envelopes: list[Envelope] = []
    for record in records:
        try:
            envelope = serde.decode(record.value)
            envelope.event()
        except (ValidationError, UnknownEventType, UnsupportedEventVersion, ValueError) as error:
            # The live consumers dead-lettered these too; a rebuild must match them, not stop.
            progress.undecodable += 1
            log.warning(
                "skipping undecodable %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )
            continue
        envelopes.append(envelope)
    return envelopes


def merge_partitions(partitions: Sequence[Sequence[Envelope]]) -> Iterator[Envelope]:
    """One stream from many partitions: each in its own order, interleaved by occurred_at."""
    return heapq.merge(*partitions, key=lambda e: e.occurred_at)


async def read_log(
    bus: EventBus, topics: Sequence[Topic], progress: ReplayProgress, *, timeout_s: float = 120.0
) -> list[Envelope]:
    """Every event now in ``topics``, decoded and merged (see the module docstring for order).

    Reads whole topics into memory (``EventBus.read_topic``); a streaming, bounded reader can
    replace it when logs outgrow memory without changing ``rebuild``'s contract.
    """
    began = time.monotonic()
    partitions: list[list[Envelope]] = []
    for topic in topics:
        records = await bus.read_topic(bus.topic_name(topic), timeout_s=timeout_s)
        by_partition: dict[int, list[RawRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        for partition in sorted(by_partition):
            ordered = sorted(by_partition[partition], key=lambda r: r.offset)
            partitions.append(_decode(ordered, progress))
    merged = list(merge_partitions(partitions))
    progress.total = len(merged)
    progress.read_s = time.monotonic() - began
    return merged


async def rebuild(
    bus: EventBus,
    topics: Sequence[Topic],
    projection: Projection,
    *,
    batch_size: int = 1000,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 1.0,
    read_timeout_s: float = 120.0,
) -> ReplayProgress:
    """Drop ``projection`` and replay ``topics`` from offset 0 into it; returns the tally.

    ``on_progress`` is called about every ``progress_every_s`` seconds and once at the end.
    """
    progress = ReplayProgress(projection.name)
    # Reset (which locks live consumers out) BEFORE reading: an event a live consumer handled
    # between the read and the reset would have its effect and inbox row wiped without being
    # in the replay, and its offset is already committed: lost from the projection for good.
    await projection.reset()
    try:
        envelopes = await read_log(bus, topics, progress, timeout_s=read_timeout_s)
        if on_progress:
            on_progress(progress)
        began = time.monotonic()
        last_report = began
        for index, envelope in enumerate(envelopes, start=1):
            await projection.apply(envelope)
            progress.applied = index
            if index % batch_size == 0:
                await projection.flush()
                now = time.monotonic()
                progress.apply_s = now - began
                if on_progress and now - last_report >= progress_every_s:
                    last_report = now
                    on_progress(progress)
        await projection.flush()
        progress.apply_s = time.monotonic() - began
    finally:
        await projection.close()
    if on_progress:
        on_progress(progress)
    return progress
