"""The generic projection rebuild: order, batching, progress, undecodable records."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from plugpay_events import replay, serde
from plugpay_events.bus.port import RawRecord
from plugpay_events.bus.recorded import RecordedLog
from plugpay_events.contracts.sessions import SessionCodeScanned
from plugpay_events.contracts.stations import StationWentOffline
from plugpay_events.envelope import Envelope, Event
from plugpay_events.registry import UnknownEventType, UnsupportedEventVersion
from plugpay_events.replay import ReplayedEvent, decode_event, rebuild
from plugpay_events.topics import STATIONS
from pydantic import ValidationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def offline(station: str, minute: int) -> Envelope:
    at = T0 + timedelta(minutes=minute)
    return Envelope.wrap(
        StationWentOffline(station_id=station, last_seen_at=at), producer="t", occurred_at=at
    )


class LogOnly(RecordedLog):
    """A bus that only has a log to read (what ``rebuild`` needs)."""

    def __init__(self, records: dict[str, list[RawRecord]]) -> None:
        super().__init__(records, topic_prefix="p.")


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.applied: list[uuid.UUID] = []

    async def reset(self) -> None:
        self.calls.append("reset")

    async def apply(self, envelope: Envelope) -> None:
        self.applied.append(envelope.event_id)

    async def flush(self) -> None:
        self.calls.append(f"flush@{len(self.applied)}")

    async def close(self) -> None:
        self.calls.append("close")


def record(partition: int, offset: int, value: bytes) -> RawRecord:
    return RawRecord("p.plugpay.stations", partition, offset, b"k", value)


async def test_partitions_keep_their_order_and_interleave_by_time() -> None:
    # Partition 0 has a clock that runs late: its order must still win within it.
    p0 = [offline("A", 5), offline("A", 1), offline("A", 7)]
    p1 = [offline("B", 2), offline("B", 6)]
    records = [record(0, i, serde.encode(e)) for i, e in enumerate(p0)]
    records += [record(1, i, serde.encode(e)) for i, e in enumerate(p1)]
    records.insert(2, record(1, 2, b"not json"))
    projection = Recorder()
    seen: list[int] = []
    progress = await rebuild(
        LogOnly({"p.plugpay.stations": records}),
        [STATIONS],
        projection,
        batch_size=2,
        on_progress=lambda p: seen.append(p.applied),
        progress_every_s=0,
    )
    order = [p1[0], *p0[:2], p1[1], p0[2]]
    assert projection.applied == [e.event_id for e in order]
    assert projection.calls == ["reset", "flush@2", "flush@4", "flush@5", "close"]
    assert (progress.total, progress.applied, progress.undecodable) == (5, 5, 1)
    assert seen[0] == 0 and seen[-1] == 5
    assert "5/5 events" in progress.line()


async def test_close_runs_when_applying_fails() -> None:
    class Failing(Recorder):
        async def apply(self, envelope: Envelope) -> None:
            raise RuntimeError("boom")

    projection = Failing()
    records = [record(0, 0, serde.encode(offline("A", 1)))]
    with pytest.raises(RuntimeError):
        await rebuild(LogOnly({"p.plugpay.stations": records}), [STATIONS], projection)
    assert projection.calls == ["reset", "close"]


async def test_the_projection_is_reset_before_the_log_is_read() -> None:
    # reset() locks live consumers out: an event they handle after the read but before the reset
    # would be wiped (effect and inbox row) yet missing from the replay.
    calls: list[str] = []

    class Watched(LogOnly):
        async def read_topic(self, topic: str, *, timeout_s: float = 10.0) -> list[RawRecord]:
            calls.append("read")
            return await super().read_topic(topic, timeout_s=timeout_s)

    class Locking(Recorder):
        async def reset(self) -> None:
            calls.append("reset")

    records = [record(0, 0, serde.encode(offline("A", 1)))]
    await rebuild(Watched({"p.plugpay.stations": records}), [STATIONS], Locking())
    assert calls == ["reset", "read"]


async def test_close_runs_when_reading_fails() -> None:
    class Broken(LogOnly):
        async def read_topic(self, topic: str, *, timeout_s: float = 10.0) -> list[RawRecord]:
            raise TimeoutError("reading took too long")

    projection = Recorder()
    with pytest.raises(TimeoutError):
        await rebuild(Broken({}), [STATIONS], projection)
    assert projection.calls == ["reset", "close"]


class BulkRecorder:
    """A ``BulkProjection``: gets batches of decoded events."""

    name = "bulk"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.events: list[ReplayedEvent] = []

    async def reset(self) -> None:
        self.calls.append("reset")

    async def apply_events(self, events: Sequence[ReplayedEvent]) -> None:
        self.events.extend(events)
        self.calls.append(f"apply {len(events)}")

    async def flush(self) -> None:
        self.calls.append("flush")

    async def close(self) -> None:
        self.calls.append("close")


async def test_a_bulk_projection_gets_batches_of_typed_events_in_the_same_order() -> None:
    p0 = [offline("A", 5), offline("A", 1), offline("A", 7)]
    p1 = [offline("B", 2), offline("B", 6)]
    records = [record(0, i, serde.encode(e)) for i, e in enumerate(p0)]
    records += [record(1, i, serde.encode(e)) for i, e in enumerate(p1)]
    records.append(record(1, 2, b'{"type": "NoSuchEvent"}'))
    projection = BulkRecorder()
    progress = await rebuild(
        LogOnly({"p.plugpay.stations": records}), [STATIONS], projection, batch_size=2
    )
    order = [p1[0], *p0[:2], p1[1], p0[2]]
    assert [e.event_id for e in projection.events] == [e.event_id for e in order]
    assert [e.event for e in projection.events] == [e.event() for e in order]
    assert all(isinstance(e.event, StationWentOffline) for e in projection.events)
    assert projection.calls == [
        "reset",
        "apply 2",
        "flush",
        "apply 2",
        "flush",
        "apply 1",
        "flush",
        "close",
    ]
    assert (progress.total, progress.applied, progress.undecodable) == (5, 5, 1)


async def test_a_bulk_projection_of_an_empty_log_is_flushed_once() -> None:
    projection = BulkRecorder()
    await rebuild(LogOnly({}), [STATIONS], projection)
    assert projection.calls == ["reset", "apply 0", "flush", "close"]


async def test_a_flush_writes_while_the_next_batch_is_applied_never_two_at_once() -> None:
    log: list[str] = []
    release: list[asyncio.Event] = []

    class Overlapping(BulkRecorder):
        async def apply_events(self, events: Sequence[ReplayedEvent]) -> None:
            log.append(f"apply {len(events)}")
            if release:
                release[-1].set()  # the flush before this batch may finish now

        async def flush(self) -> None:
            log.append("flush taken")  # before the first await, as the protocol asks
            done = asyncio.Event()
            release.append(done)
            if len(release) < 3:
                await done.wait()  # still writing while the next batch is applied
            log.append("flush done")

    records = [record(0, i, serde.encode(offline("A", i))) for i in range(5)]
    progress = await rebuild(
        LogOnly({"p.plugpay.stations": records}), [STATIONS], Overlapping(), batch_size=2
    )
    assert log == [
        "apply 2",
        "flush taken",
        "apply 2",
        "flush done",
        "flush taken",
        "apply 1",
        "flush done",
        "flush taken",
        "flush done",
    ]
    assert progress.applied == 5


async def test_the_cyclic_gc_is_paused_during_a_rebuild_and_restored_after() -> None:
    states: list[bool] = []

    class Watching(BulkRecorder):
        async def apply_events(self, events: Sequence[ReplayedEvent]) -> None:
            states.append(gc.isenabled())

    records = [record(0, 0, serde.encode(offline("A", 1)))]
    assert gc.isenabled()
    await rebuild(LogOnly({"p.plugpay.stations": records}), [STATIONS], Watching())
    assert states == [False]
    assert gc.isenabled()


def scan(**fields: Any) -> SessionCodeScanned:
    return SessionCodeScanned(
        session_id=uuid.uuid4(),
        station_id="ST-1",
        connector_id=1,
        session_started_at=T0,
        scanned_at=T0,
        user_id=uuid.uuid4(),
        **fields,
    )


def as_now_and_v1(scanned: SessionCodeScanned) -> tuple[Envelope, Envelope]:
    """The scan's envelope as written today, and as v1 (before ``code_kind``) stored it."""
    current = Envelope.wrap(scanned, producer="t")
    payload = scanned.model_dump(mode="json")
    del payload["code_kind"]
    return current, current.model_copy(update={"version": 1, "payload": payload})


def test_decoding_upcasts_old_versions_as_the_live_consumers_do() -> None:
    scanned = scan(organisation_id=None, user_groups=(), code_kind="typed")
    current, v1 = as_now_and_v1(scanned)
    assert decode_event(serde.encode(current)).event == scanned
    old = decode_event(serde.encode(v1))
    assert old.event == current.event().model_copy(update={"code_kind": "qr"}) == v1.event()
    assert (old.version, old.event_id) == (1, v1.event_id)


def test_an_old_version_is_decoded_in_one_pass_not_after_a_failed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scanned = scan(user_groups=("staff",), code_kind="qr")
    _, v1 = as_now_and_v1(scanned)
    value = serde.encode(v1)

    def fallback(value: bytes) -> Envelope:
        raise AssertionError("the slow path (serde.decode) was taken")

    monkeypatch.setattr(replay.serde, "decode", fallback)
    old = decode_event(value)
    assert isinstance(old, ReplayedEvent)
    assert old.event == scanned
    assert old.model_dump(exclude={"event"}) == v1.model_dump(exclude={"payload"})
    # Invalid after upcasting: refused, as Envelope.event refuses it.
    payload = {k: v for k, v in v1.payload.items() if k != "user_id"}
    broken = serde.encode(v1.model_copy(update={"payload": payload}))
    with pytest.raises(ValidationError):
        decode_event(broken)


@pytest.mark.parametrize(
    "change",
    [
        {"occurred_at": "2026-01-01T00:00:00"},  # naive
        {"unexpected": 1},
        {"version": 9},
        {"type": "NoSuchEvent"},
        {"payload": {"station_id": "A"}},  # last_seen_at missing
        {"aggregate_id": ""},
    ],
)
def test_decoding_refuses_what_the_live_consumers_dead_letter(change: dict[str, Any]) -> None:
    value = json.loads(serde.encode(offline("A", 1)))
    broken = json.dumps({**value, **change}).encode()
    with pytest.raises((ValidationError, UnknownEventType, UnsupportedEventVersion)):
        serde.decode(broken).event()
    with pytest.raises((ValidationError, UnknownEventType, UnsupportedEventVersion)):
        decode_event(broken)


def test_replayed_events_have_the_envelopes_fields_and_rules() -> None:
    envelope = {n: (f.annotation, f.metadata) for n, f in Envelope.model_fields.items()}
    replayed = {n: (f.annotation, f.metadata) for n, f in ReplayedEvent.model_fields.items()}
    assert envelope.pop("payload") == (dict[str, Any], [])
    assert replayed.pop("event") == (Event, [])
    assert replayed == envelope
    assert ReplayedEvent.model_fields["event"].alias == "payload"


async def test_a_failing_flush_fails_the_rebuild_and_close_still_runs() -> None:
    class Failing(BulkRecorder):
        async def flush(self) -> None:
            raise RuntimeError("disk full")

    projection = Failing()
    records = [record(0, i, serde.encode(offline("A", i))) for i in range(3)]
    with pytest.raises(RuntimeError):
        await rebuild(
            LogOnly({"p.plugpay.stations": records}), [STATIONS], projection, batch_size=2
        )
    assert projection.calls == ["reset", "apply 2", "apply 1", "close"]
