"""Export sinks that write whole chunks atomically and remember how far each partition got.

A chunk is up to ``chunk_size`` consecutive records of ONE topic-partition. It is either written
completely, with the partition's checkpoint (the last offset written), or not at all:

- Parquet / CSV: one file per event type per chunk, ``<out>/<EventType>/<topic>-<partition>-
  <first offset>-<last offset>.<ext>``, each written under a temporary name and renamed; then the
  checkpoint ``<out>/_checkpoints/<topic>-<partition>.json`` is replaced the same way. Files of a
  chunk whose checkpoint was never written (a crash between the renames) are deleted when the
  export starts again, and the chunk is written again from the same offset.
- DuckDB: the rows of every type and the checkpoint row go in one transaction.

Chunks always start right after the checkpoint, so an interrupted export resumed with the same
arguments writes exactly the files (rows) one uninterrupted run writes.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from plugpay_events.registry import EVENT_TYPES

from plugpay_analytics.flatten import UNDECODABLE, schema_for, table_name, to_arrow

Format = Literal["parquet", "csv", "duckdb"]
Checkpoints = dict[tuple[str, int], int]
# A chunk's flattened rows by event type.
Rows = dict[str, list[dict[str, Any]]]

_CHUNK_FILE = re.compile(r"^(?P<topic>.+)-(?P<partition>\d+)-(?P<first>\d{12})-(?P<last>\d{12})\.")


def chunk_stem(topic: str, partition: int, first: int, last: int) -> str:
    return f"{topic}-{partition:03d}-{first:012d}-{last:012d}"


class Writer(abc.ABC):
    """Where an export goes."""

    format: Format

    def __init__(self, out: Path) -> None:
        self.out = out

    @abc.abstractmethod
    def open(self) -> Checkpoints:
        """Prepare the output, drop what an interrupted chunk left, return the checkpoints."""

    @abc.abstractmethod
    def write_chunk(self, topic: str, partition: int, first: int, last: int, rows: Rows) -> None:
        """Write one chunk (offsets ``first``..``last`` of one partition) and its checkpoint."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release the output."""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_durably(tmp: Path, path: Path) -> None:
    """Put the written ``tmp`` in place of ``path`` once it is on disk."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class FileWriter(Writer):
    """Parquet or CSV files, one per event type per chunk."""

    def __init__(self, out: Path, format: Literal["parquet", "csv"]) -> None:
        super().__init__(out)
        self.format = format
        self.ext = "parquet" if format == "parquet" else "csv"

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "_checkpoints"

    def checkpoint_path(self, topic: str, partition: int) -> Path:
        return self.checkpoint_dir / f"{topic}-{partition:03d}.json"

    def open(self) -> Checkpoints:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (self.out / "_format").write_text(self.format + "\n")
        checkpoints: Checkpoints = {}
        for path in self.checkpoint_dir.glob("*.json"):
            data = json.loads(path.read_text())
            checkpoints[(data["topic"], int(data["partition"]))] = int(data["last_offset"])
        for path in self.checkpoint_dir.glob("*.tmp"):
            path.unlink()
        # Files of a chunk that never got its checkpoint: written again on this run.
        for path in self.out.glob("*/*"):
            if path.parent == self.checkpoint_dir:
                continue
            if path.name.endswith(".tmp"):
                path.unlink()
                continue
            match = _CHUNK_FILE.match(path.name)
            if match is None:
                continue
            key = (match["topic"], int(match["partition"]))
            if int(match["first"]) > checkpoints.get(key, -1):
                path.unlink()
        return checkpoints

    def _write_table(self, table: pa.Table, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        if self.format == "parquet":
            pq.write_table(table, tmp, compression="zstd")
        else:
            pacsv.write_csv(table, tmp)
        _replace_durably(tmp, path)

    def write_chunk(self, topic: str, partition: int, first: int, last: int, rows: Rows) -> None:
        stem = chunk_stem(topic, partition, first, last)
        for event_type, type_rows in sorted(rows.items()):
            if not type_rows:
                continue
            folder = self.out / event_type
            folder.mkdir(exist_ok=True)
            self._write_table(to_arrow(event_type, type_rows), folder / f"{stem}.{self.ext}")
            _fsync_dir(folder)
        checkpoint = self.checkpoint_path(topic, partition)
        tmp = checkpoint.with_name(checkpoint.name + ".tmp")
        tmp.write_text(
            json.dumps({"topic": topic, "partition": partition, "last_offset": last}) + "\n"
        )
        _replace_durably(tmp, checkpoint)
        _fsync_dir(self.checkpoint_dir)


CHECKPOINT_DDL = """
CREATE TABLE IF NOT EXISTS _checkpoints (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    last_offset BIGINT NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (topic, partition)
)
"""


def _table_of(event_type: str) -> str:
    return table_name(event_type) if event_type != UNDECODABLE else "_undecodable"


class DuckDBWriter(Writer):
    """One DuckDB database: a table per event type and ``_checkpoints``, one transaction a chunk."""

    format: Format = "duckdb"

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        self._db: duckdb.DuckDBPyConnection | None = None

    @property
    def db(self) -> duckdb.DuckDBPyConnection:
        assert self._db is not None, "open() first"
        return self._db

    def open(self) -> Checkpoints:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._db = duckdb.connect(str(self.out))
        self.db.execute(CHECKPOINT_DDL)
        for event_type in [*sorted(EVENT_TYPES), UNDECODABLE]:
            self._ensure_table(event_type)
        return {
            (topic, int(partition)): int(last)
            for topic, partition, last in self.db.execute(
                "SELECT topic, partition, last_offset FROM _checkpoints"
            ).fetchall()
        }

    def _ensure_table(self, event_type: str) -> None:
        empty = schema_for(event_type).empty_table()  # noqa: F841  (read by DuckDB by name)
        name = _table_of(event_type)
        self.db.execute(f'CREATE TABLE IF NOT EXISTS "{name}" AS SELECT * FROM empty')  # noqa: S608

    def write_chunk(self, topic: str, partition: int, first: int, last: int, rows: Rows) -> None:
        db = self.db
        db.execute("BEGIN TRANSACTION")
        try:
            for event_type, type_rows in sorted(rows.items()):
                if not type_rows:
                    continue
                if event_type not in EVENT_TYPES and event_type != UNDECODABLE:
                    continue
                chunk = to_arrow(event_type, type_rows)  # noqa: F841  (read by DuckDB by name)
                name = _table_of(event_type)
                db.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM chunk')  # noqa: S608
            db.execute(
                "INSERT OR REPLACE INTO _checkpoints (topic, partition, last_offset)"
                " VALUES (?, ?, ?)",
                [topic, partition, last],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def make_writer(out: Path, format: Format) -> Writer:
    if format == "duckdb":
        return DuckDBWriter(out)
    return FileWriter(out, format)
