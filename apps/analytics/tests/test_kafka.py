"""Kafka: the month published to a real broker, exported without a consumer group; speed in
events/s; report totals equal to the truth; a crash mid-chunk and a stop between chunks, then a
resume, give exactly the files of one run; a time-bounded export; projection rebuild."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from analytics_truth import SessionTotals, assert_report_matches
from plugpay_analytics.export import ExportResult, export
from plugpay_analytics.flatten import to_arrow
from plugpay_analytics.generator import Month
from plugpay_analytics.rebuild import rebuild_projection
from plugpay_analytics.report import build_report
from plugpay_analytics.source import Bound, KafkaSource
from plugpay_analytics.writers import FileWriter, chunk_stem
from plugpay_events.bus.kafka import KafkaEventBus
from plugpay_events.topics import ALL_TOPICS, METER, SESSIONS

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
async def published(kafka: str, month: Month) -> AsyncIterator[str]:
    """The month on Kafka under a fresh topic prefix; yields the prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    bus = KafkaEventBus(kafka, topic_prefix=prefix)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    began = time.monotonic()
    for i in range(0, len(month.envelopes), 5000):
        await bus.publish(month.envelopes[i : i + 5000])
    print(f"\n[kafka] published {len(month.envelopes):,} events in {time.monotonic() - began:.1f}s")
    await bus.stop()
    yield prefix
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.delete_topics([f"{prefix}{t.name}" for t in ALL_TOPICS])
    except Exception:
        pass
    finally:
        await admin.close()


def _source(kafka: str, prefix: str) -> KafkaSource:
    return KafkaSource(kafka, topic_prefix=prefix, security={})


async def test_kafka_export_speed_and_report_equal_the_truth(
    kafka: str, published: str, month: Month, tmp_path: Path
) -> None:
    out = tmp_path / "month"
    async with _source(kafka, published) as source:
        result = await export(source, out, format="parquet", progress=False)
    print(f"\n[kafka] {result.line()}")
    print(f"[kafka] EXPORT SPEED: {result.events_per_s:,.0f} events/s on Kafka")
    assert result.events == len(month.envelopes)
    assert result.undecodable == 0
    assert result.by_type["SessionCodeScanned"] == sum(
        1 for e in month.envelopes if e.type == "SessionCodeScanned"
    )
    report = build_report(out, tmp_path / "report")
    assert_report_matches(report.summary, month.truth)
    names = sorted(p.name for p in report.charts)
    assert names == sorted(
        [
            "sessions_energy_per_day.png",
            "per_station.png",
            "hour_of_week_heatmap.png",
            "utilisation.png",
            "funnel.png",
            "revenue_per_day.png",
            "session_duration.png",
        ]
    )
    assert all(p.stat().st_size > 10_000 for p in report.charts)


class Stop(Exception):
    """The analyst pressed Ctrl-C (or the machine went away)."""


class CrashingFiles(FileWriter):
    """Writes the first event type's file of the N-th chunk, then dies before the checkpoint."""

    def __init__(self, out: Path, crash_on: int) -> None:
        super().__init__(out, "parquet")
        self.crash_on = crash_on
        self.calls = 0
        self.orphan: Path | None = None

    def write_chunk(self, topic: str, partition: int, first: int, last: int, rows: Any) -> None:
        self.calls += 1
        if self.calls != self.crash_on:
            return super().write_chunk(topic, partition, first, last, rows)
        event_type, type_rows = sorted(rows.items())[0]
        (self.out / event_type).mkdir(exist_ok=True)
        self.orphan = self.out / event_type / f"{chunk_stem(topic, partition, first, last)}.parquet"
        self._write_table(to_arrow(event_type, type_rows), self.orphan)
        raise Stop("crash between a chunk's files and its checkpoint")


def _files(out: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(out)): (pq.read_table(p) if p.suffix == ".parquet" else p.read_text())
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


async def test_interrupted_exports_resume_to_the_files_of_one_run(
    kafka: str, published: str, month: Month, tmp_path: Path
) -> None:
    once, resumed = tmp_path / "once", tmp_path / "resumed"
    async with _source(kafka, published) as source:
        await export(source, once, chunk_size=1000, progress=False)

        # 1. A crash inside a chunk: one of its files exists, its checkpoint does not.
        crashing = CrashingFiles(resumed, crash_on=7)
        with pytest.raises(Stop):
            await export(source, resumed, chunk_size=1000, progress=False, writer=crashing)
        assert crashing.orphan is not None and crashing.orphan.exists()

        # 2. Resumed, then stopped again between chunks (Ctrl-C after a few more chunks).
        def stop_after(result: ExportResult) -> None:
            if result.chunks == 5:
                raise Stop("stopped between chunks")

        with pytest.raises(Stop):
            await export(source, resumed, chunk_size=1000, progress=False, on_chunk=stop_after)

        # 3. Resumed to the end.
        last = await export(source, resumed, chunk_size=1000, progress=False)
    assert 0 < last.skipped_by_checkpoint < len(month.envelopes)
    first_files, resumed_files = _files(once), _files(resumed)
    assert resumed_files.keys() == first_files.keys()
    for name, content in first_files.items():
        assert (
            resumed_files[name] == content
            if isinstance(content, str)
            else (resumed_files[name].equals(content))
        ), name
    rows = sum(t.num_rows for t in resumed_files.values() if not isinstance(t, str))
    assert rows == len(month.envelopes)  # no duplicate rows (and duplicates in the log kept)


async def test_export_by_log_time_reads_only_what_came_later(
    kafka: str, month: Month, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    bus = KafkaEventBus(kafka, topic_prefix=prefix)
    await bus.start()
    try:
        await bus.ensure_topics([SESSIONS])
        sessions = [e for e in month.envelopes if e.type.startswith("Session")][:1200]
        await bus.publish(sessions[:700])
        await asyncio.sleep(1.1)
        cut = dt.datetime.now(dt.UTC)
        await asyncio.sleep(0.1)
        await bus.publish(sessions[700:])
    finally:
        await bus.stop()
    async with _source(kafka, prefix) as source:
        later = await export(
            source,
            tmp_path / "later",
            topics=["plugpay.sessions"],
            start=Bound.at_time(cut),
            progress=False,
        )
        earlier = await export(
            source,
            tmp_path / "earlier",
            topics=["plugpay.sessions"],
            end=Bound.at_time(cut),
            progress=False,
        )
    assert later.events == 500 and earlier.events == 700


async def test_projection_rebuild_from_kafka(kafka: str, published: str, month: Month) -> None:
    projection = SessionTotals()
    async with _source(kafka, published) as source:
        progress = await rebuild_projection(source, [SESSIONS, METER], projection)
    print(f"\n[kafka] rebuild: {progress.line()}")
    assert len(projection.completed) == month.truth.completed
    assert sum(projection.completed.values()) == month.truth.energy_wh
    assert dict(projection.revenue) == month.truth.revenue_minor
