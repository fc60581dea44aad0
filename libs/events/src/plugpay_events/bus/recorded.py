"""Read-only buses: what a replay reads from (``replay.rebuild`` needs ``read_topic`` only).

``ReadOnlyBus`` joins no consumer group and refuses every write, so a replay can never change
the log it reads; ``RecordedLog`` serves records already read (an exported log, a benchmark's
generated month, a test's events)."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence

from plugpay_events import serde
from plugpay_events.bus.embedded import partition_for
from plugpay_events.bus.port import EventBus, GroupMember, RawRecord
from plugpay_events.envelope import Envelope
from plugpay_events.topics import Topic


class ReadOnly(PermissionError):
    """Something tried to write through a read-only bus."""


class ReadOnlyBus(EventBus, abc.ABC):
    """An ``EventBus`` that only reads; its source's lifecycle belongs to the caller."""

    async def start(self) -> None:
        """Nothing of its own to open."""

    async def stop(self) -> None:
        """Nothing of its own to close."""

    async def ensure_topics(self, topics: Sequence[Topic]) -> None:
        raise ReadOnly(f"{type(self).__name__} never creates topics")

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        raise ReadOnly(f"{type(self).__name__} never publishes")

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: serde.Headers
    ) -> None:
        raise ReadOnly(f"{type(self).__name__} never publishes")

    def _member_type(self) -> type[GroupMember]:
        raise ReadOnly(f"{type(self).__name__} joins no consumer group")


class RecordedLog(ReadOnlyBus):
    """Records by physical topic name, served partition by partition in offset order."""

    def __init__(
        self, records: Mapping[str, Sequence[RawRecord]], *, topic_prefix: str = ""
    ) -> None:
        super().__init__(topic_prefix=topic_prefix)
        self.records = {
            topic: sorted(rows, key=lambda r: (r.partition, r.offset))
            for topic, rows in records.items()
        }

    @classmethod
    def of(cls, envelopes: Iterable[Envelope], *, topic_prefix: str = "") -> RecordedLog:
        """``envelopes`` as the bus logs them: each on its topic, in the partition its key
        falls in (the partitioner both adapters use), offsets in the order given."""
        naming = cls({}, topic_prefix=topic_prefix)
        records: dict[str, list[RawRecord]] = {}
        heads: dict[tuple[str, int], int] = {}
        for envelope in envelopes:
            topic = serde.topic_of(envelope)
            name, key = naming.topic_name(topic), envelope.aggregate_id.encode()
            partition = partition_for(key, topic.partitions)
            offset = heads[(name, partition)] = heads.get((name, partition), -1) + 1
            record = RawRecord(name, partition, offset, key, serde.encode(envelope))
            records.setdefault(name, []).append(record)
        return cls(records, topic_prefix=topic_prefix)

    async def read_topic(self, topic: str, *, timeout_s: float = 10.0) -> list[RawRecord]:
        return list(self.records.get(topic, ()))
