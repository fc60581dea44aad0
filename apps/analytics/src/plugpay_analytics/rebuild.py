"""Generic projection rebuild on the analysts' read-only sources.

``plugpay_events.replay`` (written for session-svc's store) holds the generic part: read the
topics, decode, merge partitions by ``occurred_at``, feed a ``Projection`` in batches with
progress. It reads through ``EventBus.read_topic``; ``SourceBus`` provides exactly that on a
``LogSource`` (Kafka without a consumer group, or the embedded log in read-only transactions),
with optional start/end bounds, and refuses every write. So any service's read model that
implements ``Projection`` (reset / apply / flush / close) is rebuilt by::

    async with source_from() as source:
        await rebuild_projection(source, [SESSIONS, METER], MyProjection(...))

or from the command line: ``plugpay-analytics rebuild-projection --projection pkg.module:factory``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from plugpay_events.bus.port import RawRecord
from plugpay_events.bus.recorded import ReadOnlyBus
from plugpay_events.replay import Projection, ReplayProgress, rebuild
from plugpay_events.topics import TOPICS_BY_NAME, Topic

from plugpay_analytics.source import Bound, LogSource


class SourceBus(ReadOnlyBus):
    """``EventBus.read_topic`` on a ``LogSource``; every write raises ``ReadOnly``."""

    def __init__(self, source: LogSource, *, start: Bound | None = None, end: Bound | None = None):
        super().__init__(topic_prefix="")  # the source applies its own prefix
        self.source = source
        self.start_bound = start or Bound.beginning()
        self.end_bound = end or Bound.now()

    async def read_topic(self, topic: str, *, timeout_s: float = 10.0) -> list[RawRecord]:
        ranges = await self.source.plan(topic, self.start_bound, self.end_bound)
        records: list[RawRecord] = []
        async for batch in self.source.read(ranges):
            records.extend(
                RawRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in batch.records
            )
        return records


def topics_named(names: Sequence[str | Topic]) -> list[Topic]:
    """``plugpay.sessions`` / ``sessions`` / a ``Topic`` → the ``Topic``."""
    topics = []
    for name in names:
        if isinstance(name, Topic):
            topics.append(name)
            continue
        full = name if name in TOPICS_BY_NAME else f"plugpay.{name}"
        if full not in TOPICS_BY_NAME:
            raise ValueError(f"unknown topic {name!r}; known: {sorted(TOPICS_BY_NAME)}")
        topics.append(TOPICS_BY_NAME[full])
    return topics


async def rebuild_projection(
    source: LogSource,
    topics: Sequence[str | Topic],
    projection: Projection,
    *,
    start: Bound | None = None,
    end: Bound | None = None,
    batch_size: int = 1000,
    on_progress: Callable[[ReplayProgress], None] | None = None,
) -> ReplayProgress:
    """Reset ``projection`` and replay ``topics`` (from ``start`` to ``end``) into it."""
    return await rebuild(
        SourceBus(source, start=start, end=end),
        topics_named(topics),
        projection,
        batch_size=batch_size,
        on_progress=on_progress,
        read_timeout_s=3600.0,
    )


async def load_projection(spec: str) -> Any:
    """``package.module:attribute`` → a projection: the attribute itself if it has ``apply``,
    else the result of calling it with no arguments (awaited if it is a coroutine)."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError("--projection needs the form package.module:factory")
    target = getattr(importlib.import_module(module_name), attribute)
    if hasattr(target, "apply") and not inspect.isclass(target):
        return target
    made = target()
    return await made if inspect.isawaitable(made) else made
