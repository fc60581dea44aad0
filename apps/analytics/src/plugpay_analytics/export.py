"""Replay topics into Parquet, CSV or DuckDB: decoded, upcast, flattened, resumable.

``export`` plans the offsets to read (see ``source.Bound``), skips what the output's checkpoints
say is written, reads the partitions, decodes every record (``Envelope.event()`` upcasts older
versions), and hands the writer one chunk of one partition at a time (see ``writers``).
Undecodable records are kept in the ``_Undecodable`` table with the error, never dropped silently.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugpay_events import serde
from plugpay_events.envelope import Event
from plugpay_events.registry import UnknownEventType, UnsupportedEventVersion
from plugpay_events.topics import ALL_TOPICS, DEAD_LETTER
from pydantic import ValidationError
from tqdm import tqdm

from plugpay_analytics.flatten import UNDECODABLE, LogPosition, flatten
from plugpay_analytics.source import Bound, LogRecord, LogSource, PartitionRange
from plugpay_analytics.writers import Format, Writer, make_writer

DEFAULT_TOPICS: tuple[str, ...] = tuple(t.name for t in ALL_TOPICS if t != DEAD_LETTER)


@dataclass
class ExportResult:
    """What one run of ``export`` did."""

    source: str
    format: str
    out: Path
    planned: int = 0
    events: int = 0
    undecodable: int = 0
    chunks: int = 0
    skipped_by_checkpoint: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"exported {self.events:,} events ({self.undecodable} undecodable) from "
            f"{self.source} to {self.format} {self.out} in {self.seconds:.1f}s = "
            f"{self.events_per_s:,.0f} events/s; {self.chunks} chunks; "
            f"{self.skipped_by_checkpoint:,} already exported before"
        )


def decode_row(record: LogRecord) -> tuple[str, dict[str, Any]]:
    """(table, row) for one stored record; an undecodable one goes to ``_Undecodable``."""
    where = LogPosition(record.topic, record.partition, record.offset, record.timestamp)
    try:
        envelope = serde.decode(record.value)
        event: Event = envelope.event()  # upcasts older versions to the current model
    except (ValidationError, UnknownEventType, UnsupportedEventVersion, ValueError) as error:
        return UNDECODABLE, {
            "log_topic": record.topic,
            "log_partition": record.partition,
            "log_offset": record.offset,
            "log_timestamp": record.timestamp,
            "error": f"{type(error).__name__}: {str(error)[:500]}",
            "value": record.value.decode("utf-8", "replace"),
        }
    return envelope.type, flatten(envelope, event, where)


class _Partition:
    def __init__(self) -> None:
        self.records: list[LogRecord] = []


async def export(
    source: LogSource,
    out: Path,
    *,
    format: Format = "parquet",
    topics: Sequence[str] = DEFAULT_TOPICS,
    start: Bound | None = None,
    end: Bound | None = None,
    chunk_size: int = 5000,
    read_batch: int = 5000,
    progress: bool | None = None,
    writer: Writer | None = None,
    on_chunk: Callable[[ExportResult], None] | None = None,
) -> ExportResult:
    """Export ``topics`` from ``source`` into ``out``; resumes from the output's checkpoints.

    ``source`` must be started. ``progress`` shows a bar with events/s on stderr (default: when
    stderr is a terminal).
    """
    start = start or Bound.beginning()
    end = end or Bound.now()
    writer = writer or make_writer(out, format)
    result = ExportResult(source=source.name, format=writer.format, out=out)
    began = time.monotonic()
    checkpoints = writer.open()
    try:
        ranges: list[PartitionRange] = []
        for topic in topics:
            for r in await source.plan(topic, start, end):
                done_up_to = checkpoints.get((r.topic, r.partition))
                if done_up_to is not None and done_up_to >= r.start:
                    first = min(done_up_to + 1, r.stop)
                    result.skipped_by_checkpoint += first - r.start
                    r = PartitionRange(r.topic, r.partition, first, r.stop)
                ranges.append(r)
        result.planned = sum(r.size for r in ranges)
        show = sys.stderr.isatty() if progress is None else progress
        bar = tqdm(
            total=result.planned,
            unit=" events",
            mininterval=0.5,
            desc=f"export {source.name}→{writer.format}",
            disable=not show,
            file=sys.stderr,
            smoothing=0.1,
        )
        buffers: dict[tuple[str, int], _Partition] = defaultdict(_Partition)

        def flush(key: tuple[str, int], records: list[LogRecord]) -> None:
            rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for record in records:
                table, row = decode_row(record)
                rows[table].append(row)
            writer.write_chunk(key[0], key[1], records[0].offset, records[-1].offset, rows)
            result.chunks += 1
            result.events += len(records)
            for table, table_rows in rows.items():
                result.by_type[table] = result.by_type.get(table, 0) + len(table_rows)
            result.undecodable += len(rows.get(UNDECODABLE, []))
            bar.update(len(records))
            if on_chunk:
                on_chunk(result)

        task = asyncio.current_task()
        try:
            async for batch in source.read(ranges, batch_size=read_batch):
                if task is not None and task.cancelling():
                    # Ctrl-C (asyncio.run cancels the main task): the Kafka client can swallow
                    # the cancellation inside a fetch, so honour it here, between chunks.
                    raise asyncio.CancelledError
                key = (batch.topic, batch.partition)
                buffer = buffers[key]
                buffer.records.extend(batch.records)
                while len(buffer.records) >= chunk_size:
                    chunk, buffer.records = (
                        buffer.records[:chunk_size],
                        buffer.records[chunk_size:],
                    )
                    flush(key, chunk)
                if batch.done:
                    if buffer.records:
                        flush(key, buffer.records)
                    del buffers[key]
        finally:
            bar.close()
    finally:
        writer.close()
        result.seconds = time.monotonic() - began
    return result
