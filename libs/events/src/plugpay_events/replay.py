"""Rebuilding a projection from the event log: drop it, replay its topics from offset 0.

Any read model (session-svc's store today; pricing's and billing's views later) implements
``Projection``; ``rebuild`` does the rest: reads every record of the topics, decodes them,
merges the partitions into one stream, feeds the projection in batches and reports progress.

Order: each partition stays in offset order (so one aggregate's events stay in order, as every
aggregate is keyed to one partition); across partitions and topics the stream is merged by
``occurred_at``, which approximates the order the live consumers saw. A projection must
therefore not depend on the relative order of events of different keys or topics (the live
consumers do not guarantee one either).

Two kinds of projection: a ``Projection`` gets one ``Envelope`` at a time (``apply``); a
``BulkProjection`` gets batches of ``ReplayedEvent`` (``apply_events``): each record decoded
once, straight from its JSON into the typed event (older versions through the upcasters, in
the same pass), for read models that fold a whole log in memory and write their rows in bulk.
For those the log is decoded as it is applied, a chunk per partition as the merge needs it,
so a batch's bulk write overlaps decoding the next one (decoding still counts as reading in
``ReplayProgress``). Both are validated exactly as the live consumers validate
(what they would dead-letter is skipped and counted). While a rebuild runs, Python's cyclic
garbage collector is paused: with a whole log of objects alive, its full collections cost more
than the decoding itself, and neither decoded events nor read models make cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import itertools
import logging
import operator
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, TypeVar, Union, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from plugpay_events import serde
from plugpay_events.bus.port import EventBus, RawRecord
from plugpay_events.envelope import Envelope, Event
from plugpay_events.registry import (
    EVENT_TYPES,
    UnknownEventType,
    UnsupportedEventVersion,
    upcastable,
)
from plugpay_events.topics import Topic
from plugpay_events.types import UtcDatetime

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


class ReplayedEvent(BaseModel):
    """One event of the log, decoded once: the envelope's facts and its typed ``event``.

    The same fields and rules as ``Envelope`` (a test keeps them in step), except that the
    payload arrives as the event it encodes, validated at the current version.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = Field(ge=1)
    occurred_at: UtcDatetime
    aggregate_id: str = Field(min_length=1, max_length=200)
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    producer: str = Field(min_length=1, max_length=100)
    event: Event = Field(alias="payload")
    trace_parent: str | None = Field(default=None, max_length=256)


@runtime_checkable
class BulkProjection(Protocol):
    """A read model that takes the log in batches of decoded events (see the module docstring);
    ``reset`` and ``close`` mean what they mean for a ``Projection``.

    ``rebuild`` overlaps writing with applying: it applies the next batch while the previous
    ``flush`` writes, so a projection whose ``apply_events`` yields to the event loop now and
    then keeps its database and its fold busy at once. Never two flushes at a time, and every
    flush has finished before the next one starts and before ``close``.
    """

    name: str

    async def reset(self) -> None:
        """Empty the read model; take any lock that keeps live writers out until ``close``."""

    async def apply_events(self, events: Sequence[ReplayedEvent]) -> None:
        """Apply a batch of events, in order (it may be buffered until ``flush``)."""

    async def flush(self) -> None:
        """Make everything applied before this call durable. What it writes must be taken
        before its first ``await``: the next ``apply_events`` runs while it writes."""

    async def close(self) -> None:
        """Release what ``reset`` took; called whether the rebuild succeeded or not."""


class _ReplayedOlder(Envelope):
    """An event at an older version than its class: an ``Envelope`` (the live consumers' own
    model), its payload upcast and validated after (``Envelope.event``)."""


_DECODERS: tuple[int, Callable[[bytes], Any]] | None = None


def _literal(value: object) -> Any:
    return Literal[value]


def _typed_decoder() -> Callable[[bytes], Any]:
    """One JSON parse per record into the right ``ReplayedEvent`` subclass, chosen by the
    envelope's ``type`` and then its ``version`` (older versions with an upcaster path get a
    ``_ReplayedOlder`` model, so they do not fail the fast path first); rebuilt when more event
    types have been registered since."""
    global _DECODERS
    if _DECODERS is None or _DECODERS[0] != len(EVENT_TYPES):
        members: list[Any] = []
        for name, cls in EVENT_TYPES.items():
            current: Any = create_model(
                f"Replayed{cls.__name__}",
                __base__=ReplayedEvent,
                type=(_literal(name), ...),
                version=(_literal(cls.version), ...),
                event=(cls, Field(alias="payload")),
            )
            older = [
                create_model(
                    f"Replayed{cls.__name__}V{version}",
                    __base__=_ReplayedOlder,
                    type=(_literal(name), ...),
                    version=(_literal(version), ...),
                )
                for version in range(1, cls.version)
                if upcastable(name, version)
            ]
            members.append(_by_version([current, *older]) if older else current)
        union: Any = Annotated[Union[tuple(members)], Field(discriminator="type")]  # noqa: UP007
        # The core validator's own method: TypeAdapter.validate_json's Python layer costs a
        # fifth as much again per event.
        _DECODERS = (len(EVENT_TYPES), TypeAdapter(union).validator.validate_json)
    return _DECODERS[1]


def _upcast(older: _ReplayedOlder) -> ReplayedEvent:
    """An older version's payload through the upcasters into its current event, as
    ``Envelope.event`` does for the live consumers."""
    facts = {name: value for name, value in older if name != "payload"}
    return ReplayedEvent.model_construct(**facts, event=older.event())


def _by_version(models: list[Any]) -> Any:
    return Annotated[Union[tuple(models)], Field(discriminator="version")]  # noqa: UP007


def decode_event(value: bytes) -> ReplayedEvent:
    """A record's value as a ``ReplayedEvent``; raises what ``serde.decode`` + ``event()``
    raise for what the live consumers would dead-letter."""
    if not EVENT_TYPES:
        raise UnknownEventType("no event types registered")
    try:
        decoded = _typed_decoder()(value)
    except ValidationError:
        pass  # really invalid, or a version with no upcaster: the live consumers' path decides
    else:
        if type(decoded).__base__ is _ReplayedOlder:
            return _upcast(decoded)
        replayed: ReplayedEvent = decoded
        return replayed
    envelope = serde.decode(value)
    event = envelope.event()
    facts = envelope.model_dump(exclude={"payload"})
    return ReplayedEvent.model_construct(**facts, event=event)


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


D = TypeVar("D", Envelope, ReplayedEvent)


def _as_envelope(value: bytes) -> Envelope:
    envelope = serde.decode(value)
    envelope.event()  # validated as the live consumers validate, decoded again by ``apply``
    return envelope


def _decode(
    records: Sequence[RawRecord], progress: ReplayProgress, decode: Callable[[bytes], D]
) -> list[D]:
    envelopes: list[D] = []
    for record in records:
        try:
            envelope = decode(record.value)
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


_OCCURRED_AT = operator.attrgetter("occurred_at")


def merge_partitions(partitions: Sequence[Iterable[D]]) -> Iterator[D]:
    """One stream from many partitions: each in its own order, interleaved by occurred_at."""
    return heapq.merge(*partitions, key=_OCCURRED_AT)


async def _read_partitions(
    bus: EventBus, topics: Sequence[Topic], timeout_s: float, concurrently: bool
) -> list[list[RawRecord]]:
    """Every record of ``topics``, one list per partition in offset order."""
    names = [bus.topic_name(topic) for topic in topics]
    if concurrently:
        # One topic's network waits overlap another's unpacking.
        everything = await asyncio.gather(*(bus.read_topic(n, timeout_s=timeout_s) for n in names))
    else:
        everything = [await bus.read_topic(n, timeout_s=timeout_s) for n in names]
    partitions: list[list[RawRecord]] = []
    for records in everything:
        by_partition: dict[int, list[RawRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        records.clear()
        for partition in sorted(by_partition):
            partitions.append(sorted(by_partition.pop(partition), key=_OFFSET))
    return partitions


_OFFSET = operator.attrgetter("offset")


async def _read(
    bus: EventBus,
    topics: Sequence[Topic],
    progress: ReplayProgress,
    timeout_s: float,
    decode: Callable[[bytes], D],
    concurrently: bool,
) -> list[D]:
    began = time.monotonic()
    partitions = await _read_partitions(bus, topics, timeout_s, concurrently)
    decoded: list[list[D]] = []
    for records in partitions:
        decoded.append(_decode(records, progress, decode))
        records.clear()  # the raw bytes go as soon as they are decoded
    merged = list(merge_partitions(decoded))
    progress.total = len(merged)
    progress.read_s = time.monotonic() - began
    return merged


# Records decoded at a time by the streaming (bulk) replay: big enough to keep the clock's
# cost out of the way, small enough that a partition's merge does not decode far ahead.
_DECODE_CHUNK = 500


def _decoding(
    records: list[RawRecord], progress: ReplayProgress, clock: list[float]
) -> Iterator[ReplayedEvent]:
    """A partition's events, decoded a chunk at a time as the merge asks for them; the time
    spent decoding is added to ``clock[0]``."""
    for start in range(0, len(records), _DECODE_CHUNK):
        began = time.perf_counter()
        chunk = _decode(records[start : start + _DECODE_CHUNK], progress, decode_event)
        clock[0] += time.perf_counter() - began
        yield from chunk
    records.clear()


async def _take(events: Iterator[ReplayedEvent], count: int) -> list[ReplayedEvent]:
    """The next ``count`` events of the stream; the loop gets a turn every few thousand, so a
    flush (its COPY) goes on while they are decoded."""
    batch: list[ReplayedEvent] = []
    while len(batch) < count:
        chunk = list(itertools.islice(events, min(_YIELD_EVERY, count - len(batch))))
        batch += chunk
        if len(chunk) < _YIELD_EVERY:
            break
        await asyncio.sleep(0)
    return batch


_YIELD_EVERY = 2000


async def read_log(
    bus: EventBus,
    topics: Sequence[Topic],
    progress: ReplayProgress,
    *,
    timeout_s: float = 120.0,
    concurrently: bool = False,
) -> list[Envelope]:
    """Every event now in ``topics``, decoded and merged (see the module docstring for order).

    Reads whole topics into memory (``EventBus.read_topic``); a streaming, bounded reader can
    replace it when logs outgrow memory without changing ``rebuild``'s contract.
    ``concurrently`` reads all topics at once: only for a bus whose ``read_topic`` calls may
    overlap (Kafka's and the embedded log's may; one on a single connection may not).
    """
    return await _read(bus, topics, progress, timeout_s, _as_envelope, concurrently)


async def read_events(
    bus: EventBus,
    topics: Sequence[Topic],
    progress: ReplayProgress,
    *,
    timeout_s: float = 120.0,
    concurrently: bool = False,
) -> list[ReplayedEvent]:
    """``read_log``, each event decoded once into a ``ReplayedEvent``."""
    return await _read(bus, topics, progress, timeout_s, decode_event, concurrently)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Everything allocated meanwhile is in the youngest generation, so the first
            # collection walks all that is still alive (seconds after a million events); a
            # command that exits next disables the collector itself (session-svc rebuild).
            gc.enable()


async def rebuild(
    bus: EventBus,
    topics: Sequence[Topic],
    projection: Projection | BulkProjection,
    *,
    batch_size: int = 1000,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 1.0,
    read_timeout_s: float = 120.0,
    read_concurrently: bool = False,
) -> ReplayProgress:
    """Drop ``projection`` and replay ``topics`` from offset 0 into it; returns the tally.

    A ``BulkProjection`` (one with ``apply_events``) gets the events in batches of
    ``batch_size``, each batch followed by ``flush``; a ``Projection`` gets them one by one,
    with a ``flush`` after every ``batch_size``. ``on_progress`` is called about every
    ``progress_every_s`` seconds and once at the end. ``read_concurrently``: see ``read_log``.
    """
    progress = ReplayProgress(projection.name)
    with _cyclic_gc_paused():
        # Reset (which locks live consumers out) BEFORE reading: an event a live consumer
        # handled between the read and the reset would have its effect and inbox row wiped
        # without being in the replay, and its offset is already committed: lost for good.
        await projection.reset()
        try:
            if isinstance(projection, BulkProjection):
                await _replay_bulk(
                    bus, topics, projection, progress, batch_size, read_timeout_s,
                    read_concurrently, on_progress, progress_every_s,
                )  # fmt: skip
            else:
                await _replay(
                    bus, topics, projection, progress, batch_size, read_timeout_s,
                    read_concurrently, on_progress, progress_every_s,
                )  # fmt: skip
        finally:
            await projection.close()
    if on_progress:
        on_progress(progress)
    return progress


async def _replay(
    bus: EventBus,
    topics: Sequence[Topic],
    projection: Projection,
    progress: ReplayProgress,
    batch_size: int,
    read_timeout_s: float,
    read_concurrently: bool,
    on_progress: Callable[[ReplayProgress], None] | None,
    progress_every_s: float,
) -> None:
    envelopes = await read_log(
        bus, topics, progress, timeout_s=read_timeout_s, concurrently=read_concurrently
    )
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


async def _replay_bulk(
    bus: EventBus,
    topics: Sequence[Topic],
    projection: BulkProjection,
    progress: ReplayProgress,
    batch_size: int,
    read_timeout_s: float,
    read_concurrently: bool,
    on_progress: Callable[[ReplayProgress], None] | None,
    progress_every_s: float,
) -> None:
    began = time.monotonic()
    partitions = await _read_partitions(bus, topics, read_timeout_s, read_concurrently)
    reading_s = time.monotonic() - began
    progress.total = sum(len(records) for records in partitions)
    # Decoded as applied, so the previous batch's flush (PostgreSQL's COPY, on the other core)
    # overlaps decoding too, not only the fold; the decoding time still counts as reading.
    decoding_s = [0.0]
    events = merge_partitions([_decoding(records, progress, decoding_s) for records in partitions])
    progress.read_s = reading_s
    if on_progress:
        on_progress(progress)
    began = time.monotonic()
    last_report = began

    def clocks() -> float:
        now = time.monotonic()
        progress.read_s = reading_s + decoding_s[0]
        progress.apply_s = now - began - decoding_s[0]
        return now

    flushing: asyncio.Task[None] | None = None
    applied = 0
    try:
        while True:
            batch = await _take(events, batch_size)
            await projection.apply_events(batch)
            if flushing is not None:
                await flushing
                flushing = None
                progress.applied = applied
                now = clocks()
                if on_progress and now - last_report >= progress_every_s:
                    last_report = now
                    on_progress(progress)
            applied += len(batch)
            flushing = asyncio.create_task(projection.flush())
            # One turn of the loop runs the flush up to its first await: it has taken its
            # rows before the next batch is applied.
            await asyncio.sleep(0)
            if len(batch) < batch_size:
                break
        await flushing
        flushing = None
        progress.applied = applied
        progress.total = applied  # what was left after the undecodable records
    finally:
        if flushing is not None:
            # Applying failed while a flush wrote: let it end before ``close`` rolls back.
            with contextlib.suppress(Exception):
                await flushing
    clocks()
