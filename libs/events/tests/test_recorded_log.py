"""The read-only bus over recorded records: logged as the adapters log, served in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from plugpay_events import serde
from plugpay_events.bus.embedded import partition_for
from plugpay_events.bus.port import RawRecord
from plugpay_events.bus.recorded import ReadOnly, RecordedLog
from plugpay_events.contracts.stations import StationWentOffline
from plugpay_events.envelope import Envelope
from plugpay_events.topics import STATIONS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def offline(station: str, minute: int) -> Envelope:
    at = T0 + timedelta(minutes=minute)
    return Envelope.wrap(
        StationWentOffline(station_id=station, last_seen_at=at), producer="t", occurred_at=at
    )


async def test_envelopes_are_logged_by_key_with_gap_free_offsets_per_partition() -> None:
    stations = [f"CP-{n}" for n in range(40)]
    log = [offline(s, minute) for minute in range(3) for s in stations]
    bus = RecordedLog.of(log, topic_prefix="x.")
    records = await bus.read_topic("x.plugpay.stations")
    assert len(records) == len(log) and await bus.read_topic("x.plugpay.sessions") == []
    assert len({r.partition for r in records}) > 1
    for station in stations:
        mine = [r for r in records if r.key == station.encode()]
        # the partition the Kafka and embedded adapters would choose, the events in order
        assert {r.partition for r in mine} == {partition_for(station.encode(), STATIONS.partitions)}
        assert [serde.decode(r.value).occurred_at.minute for r in mine] == [0, 1, 2]
    for partition in {r.partition for r in records}:
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == list(range(len(offsets)))


async def test_records_are_served_partition_by_partition_in_offset_order() -> None:
    value = serde.encode(offline("A", 1))
    given = [RawRecord("t", p, o, b"k", value) for p, o in [(1, 1), (0, 1), (1, 0), (0, 0)]]
    records = await RecordedLog({"t": given}).read_topic("t")
    assert [(r.partition, r.offset) for r in records] == [(0, 0), (0, 1), (1, 0), (1, 1)]


async def test_it_writes_nothing_and_joins_no_group() -> None:
    bus = RecordedLog.of([offline("A", 1)])
    with pytest.raises(ReadOnly, match="never publishes"):
        await bus.publish([offline("A", 2)])
    with pytest.raises(ReadOnly, match="never publishes"):
        await bus.publish_raw("plugpay.stations", b"A", b"{}", ())
    with pytest.raises(ReadOnly, match="never creates topics"):
        await bus.ensure_topics([STATIONS])

    async def handler(_: object) -> None: ...

    with pytest.raises(ReadOnly, match="joins no consumer group"):
        bus.consumer("g", [STATIONS], handler)
    assert len(await bus.read_topic("plugpay.stations")) == 1
