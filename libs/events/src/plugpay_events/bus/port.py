"""The event-bus port: what every adapter (Kafka, embedded PostgreSQL log) must provide.

Semantics, identical for every adapter and proven by one contract suite:
- ``publish`` returns once the events are durably stored, in order per aggregate key;
- a consumer group splits a topic's partitions between its members;
- offsets are committed only after the handler returned (its transaction committed), so a
  handler that fails sees the same event again (at-least-once);
- undecodable or invalid events go to the dead-letter topic with the reason, and the
  partition moves on.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import ValidationError

from plugpay_events import serde
from plugpay_events.envelope import Envelope
from plugpay_events.registry import UnknownEventType, UnsupportedEventVersion
from plugpay_events.topics import DEAD_LETTER, Topic

log = logging.getLogger(__name__)


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never be handled; it is dead-lettered."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """One event as a consumer receives it, with where it came from."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()


Handler = Callable[[Delivery], Awaitable[None]]
# Optional, for throughput: many deliveries of ONE partition, in offset order, handled in one
# go (typically one transaction). If it raises anything but a transient error, the same
# records go to the ``Handler`` one by one, so a poison record is dead-lettered alone.
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]


@runtime_checkable
class DeadLetterObserver(Protocol):
    """A handler that also wants to hear when one of its records is dead-lettered (metrics)."""

    def dead_lettered(self, group: str, record: RawRecord, reason: str) -> None: ...


def _tell_dead_lettered(handler: Handler, group: str, record: RawRecord, reason: str) -> None:
    if isinstance(handler, DeadLetterObserver):
        try:
            handler.dead_lettered(group, record, reason)
        except Exception:  # observing must never stop the partition
            log.exception("dead-letter observer failed")


# PostgreSQL answers that say "not now" rather than "never": connection exceptions (08),
# the server shutting down or starting up (57P01-57P03), serialisation failures and deadlocks
# (40001, 40P01), too many connections (53300).
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01", "53300"})


def _transient_sqlstate(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) carries a PostgreSQL SQLSTATE that passes."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for name in ("sqlstate", "pgcode"):
            code = getattr(current, name, None)
            if isinstance(code, str) and (code.startswith("08") or code in _TRANSIENT_SQLSTATES):
                return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing handler is retried before its event is dead-lettered.

    Errors that look transient (connections, time-outs) are retried without limit: dead-
    lettering an event because PostgreSQL restarted would lose a payment.
    """

    max_attempts: int = 5
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 5.0
    transient: tuple[type[BaseException], ...] = field(default=(OSError, TimeoutError))

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, self.transient):
            return True
        # SQLAlchemy wraps driver errors; a lost connection is transient whatever its class.
        if getattr(error, "connection_invalidated", False):
            return True
        return _transient_sqlstate(error)

    def backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff_s, self.initial_backoff_s * (2 ** (attempt - 1))))


@dataclass(frozen=True)
class RawRecord:
    """A record as stored, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Consumer(abc.ABC):
    """A member of a consumer group, running until stopped."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Join the group and start consuming in a background task."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Finish the event in hand, commit, leave the group."""


class EventBus(abc.ABC):
    """Publishes envelopes and runs consumer groups."""

    def __init__(self, *, topic_prefix: str = "") -> None:
        self.topic_prefix = topic_prefix

    def topic_name(self, topic: Topic | str) -> str:
        """The physical name of a topic, with this bus's prefix."""
        name = topic.name if isinstance(topic, Topic) else topic
        return f"{self.topic_prefix}{name}"

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def ensure_topics(self, topics: Sequence[Topic]) -> None:
        """Create missing topics with their partitions and settings."""

    @abc.abstractmethod
    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Store envelopes durably, each on its type's topic keyed by its aggregate id."""

    @abc.abstractmethod
    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: serde.Headers
    ) -> None:
        """Store bytes as they are (dead letters, fault injection in tests)."""

    @abc.abstractmethod
    async def read_topic(self, topic: str, *, timeout_s: float = 10.0) -> list[RawRecord]:
        """Every record currently in ``topic``, partition by partition in offset order,
        without joining a group (replay tools, audits, dead-letter inspection)."""

    def consumer(
        self,
        group: str,
        topics: Sequence[Topic],
        handler: Handler,
        *,
        retry: RetryPolicy | None = None,
        batch_handler: BatchHandler | None = None,
    ) -> Consumer:
        """A new member of ``group`` reading ``topics`` from the group's committed offsets
        (from the beginning for a new group).

        With ``batch_handler``, the records fetched from one partition are handled together
        (``deliver_batch``) and their offsets committed once it returned; ``handler`` is the
        one-by-one fallback for a batch that failed."""
        physical = [self.topic_name(t) for t in topics]
        member = self._member_type()
        return member(self, group, physical, handler, retry or RetryPolicy(), batch_handler)

    def _member_type(self) -> type[GroupMember]:
        """The adapter's group member. A bus that only reads its log (replay, analytics) joins
        no group."""
        raise NotImplementedError(f"{type(self).__name__} joins no consumer group")


class GroupMember(Consumer):
    """What every adapter's group member holds, and how it runs what it fetched: one
    partition's records at a time through ``deliver_in_order``."""

    def __init__(
        self,
        bus: EventBus,
        group: str,
        topics: list[str],
        handler: Handler,
        retry: RetryPolicy,
        batch_handler: BatchHandler | None,
    ) -> None:
        self.bus = bus
        self.group = group
        self.topics = topics  # physical names
        self.handler = handler
        self.retry = retry
        self.batch_handler = batch_handler
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def _deliver(
        self, records: Sequence[RawRecord], done_up_to: Callable[[int], Awaitable[None]]
    ) -> None:
        await deliver_in_order(
            self.bus,
            self.group,
            records,
            self.handler,
            self.batch_handler,
            self.retry,
            done_up_to=done_up_to,
            stopping=self._stopping,
        )


async def _decode(
    bus: EventBus, group: str, record: RawRecord, handler: Handler
) -> Delivery | None:
    """The record as a delivery, or None once an undecodable one is dead-lettered."""
    try:
        envelope = serde.decode(record.value)
        envelope.event()  # validate the payload now so a bad one never reaches a handler
    except (ValidationError, UnknownEventType, UnsupportedEventVersion, ValueError) as error:
        await dead_letter(bus, group, record, f"undecodable: {type(error).__name__}: {error}")
        _tell_dead_lettered(handler, group, record, "undecodable")
        return None
    return Delivery(envelope, record.topic, record.partition, record.offset, record.headers)


async def deliver(
    bus: EventBus, group: str, record: RawRecord, handler: Handler, retry: RetryPolicy
) -> None:
    """Decode one record and run the handler with the retry policy; dead-letter poison.

    Returns when the record is done with (handled or dead-lettered); the caller then commits.
    Raises only on cancellation.
    """
    delivery = await _decode(bus, group, record, handler)
    if delivery is not None:
        await _handle_one(bus, group, record, delivery, handler, retry)


async def deliver_in_order(
    bus: EventBus,
    group: str,
    records: Sequence[RawRecord],
    handler: Handler,
    batch_handler: BatchHandler | None,
    retry: RetryPolicy,
    *,
    done_up_to: Callable[[int], Awaitable[None]],
    stopping: asyncio.Event,
) -> None:
    """One partition's fetched records, in offset order, as every adapter's consumer runs them:
    together through ``deliver_batch`` when there is a ``batch_handler`` (then
    ``done_up_to(next offset)`` once), else one by one through ``deliver`` (``done_up_to``
    after each, the handler's transaction having committed). Nothing more starts once
    ``stopping`` is set: what is left is delivered again to the group."""
    if not records or stopping.is_set():
        return
    if batch_handler is not None:
        await deliver_batch(bus, group, records, handler, batch_handler, retry)
        await done_up_to(records[-1].offset + 1)
        return
    for record in records:
        if stopping.is_set():
            return
        await deliver(bus, group, record, handler, retry)
        await done_up_to(record.offset + 1)


async def stop_task(task: asyncio.Task[None] | None, grace_s: float) -> None:
    """Let a consumer's or relay's loop finish what it holds (it has seen its stop signal);
    cancel it only if it is still running after ``grace_s`` (a stuck handler)."""
    if task is None:
        return
    done, _ = await asyncio.wait({task}, timeout=grace_s)
    if not done:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def deliver_batch(
    bus: EventBus,
    group: str,
    records: Sequence[RawRecord],
    handler: Handler,
    batch_handler: BatchHandler,
    retry: RetryPolicy,
) -> None:
    """Handle records of one partition (in offset order) with one ``batch_handler`` call.

    Undecodable records are dead-lettered and left out of the batch. A transient error
    retries the whole batch without limit (with back-off); any other error, ``PoisonEvent``
    included, means the batch's transaction did not commit: the records then go one by one
    through ``deliver``'s path (its retries, dead-lettering only the record that fails), so
    one poison record never parks its neighbours. Returns when every record is done with; the
    caller then commits the offsets. Raises only on cancellation.
    """
    pairs: list[tuple[RawRecord, Delivery]] = []
    for record in records:
        delivery = await _decode(bus, group, record, handler)
        if delivery is not None:
            pairs.append((record, delivery))
    if not pairs:
        return
    deliveries = [d for _, d in pairs]
    attempt = 0
    while True:
        attempt += 1
        try:
            await batch_handler(deliveries)
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not isinstance(error, PoisonEvent) and retry.is_transient(error):
                log.warning(
                    "batch of %d failed (attempt %d, transient): %s", len(pairs), attempt, error
                )
                await asyncio.sleep(retry.backoff(attempt))
                continue
            log.warning(
                "batch of %d from %s[%d]@%d failed (%s: %s); handling them one by one",
                len(pairs),
                pairs[0][0].topic,
                pairs[0][0].partition,
                pairs[0][0].offset,
                type(error).__name__,
                error,
            )
            break
    for record, delivery in pairs:
        await _handle_one(bus, group, record, delivery, handler, retry)


async def _handle_one(
    bus: EventBus,
    group: str,
    record: RawRecord,
    delivery: Delivery,
    handler: Handler,
    retry: RetryPolicy,
) -> None:
    attempt = 0
    while True:
        attempt += 1
        try:
            await handler(delivery)
            return
        except PoisonEvent as poison:
            await dead_letter(bus, group, record, f"rejected: {poison.reason}")
            _tell_dead_lettered(handler, group, record, "rejected")
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            transient = retry.is_transient(error)
            if not transient and attempt >= retry.max_attempts:
                log.exception("handler failed %d times; dead-lettering", attempt)
                await dead_letter(
                    bus, group, record, f"handler_failed: {type(error).__name__}: {error}"
                )
                _tell_dead_lettered(handler, group, record, "handler_failed")
                return
            log.warning(
                "handler failed (attempt %d, %s): %s",
                attempt,
                "transient" if transient else "retrying",
                error,
            )
            await asyncio.sleep(retry.backoff(attempt))


async def dead_letter(bus: EventBus, group: str, record: RawRecord, reason: str) -> None:
    """Park a record on the dead-letter topic with where it came from and why."""
    log.error(
        "dead-lettering %s[%d]@%d for %s: %s",
        record.topic,
        record.partition,
        record.offset,
        group,
        reason,
    )
    headers: serde.Headers = [
        ("dlq.reason", reason.encode()[:1000]),
        ("dlq.group", group.encode()),
        ("dlq.topic", record.topic.encode()),
        ("dlq.partition", str(record.partition).encode()),
        ("dlq.offset", str(record.offset).encode()),
    ]
    await bus.publish_raw(bus.topic_name(DEAD_LETTER), record.key, record.value, headers)
