"""The embedded log (PostgreSQL ``eventlog``): export with an analyst role that can only SELECT,
in every format, report totals equal to the truth, DuckDB crash and resume, projection rebuild."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import duckdb
import pytest
from analytics_truth import SessionTotals, assert_report_matches
from plugpay_analytics.dataset import open_dataset
from plugpay_analytics.export import export
from plugpay_analytics.generator import Month
from plugpay_analytics.rebuild import SourceBus, rebuild_projection
from plugpay_analytics.report import build_report
from plugpay_analytics.source import Bound, EmbeddedLogSource
from plugpay_analytics.writers import DuckDBWriter
from plugpay_events.bus.embedded import EmbeddedEventBus
from plugpay_events.bus.recorded import ReadOnly
from plugpay_events.topics import ALL_TOPICS, METER, SESSIONS

pytestmark = pytest.mark.infra

DOCS = Path(__file__).resolve().parents[3] / "docs" / "analytics.md"


def doc_queries() -> list[str]:
    """The SQL blocks of the 'Three questions' section of docs/analytics.md."""
    section = DOCS.read_text().split("## Three questions", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(blocks) == 3
    return blocks


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="module")
async def analyst_url(postgres_url: str, month: Month) -> AsyncIterator[str]:
    """A database whose embedded log holds the month, and the URL of a role that may only read
    ``eventlog.records`` and ``eventlog.partition_heads``."""
    name = f"t_analytics_{uuid.uuid4().hex[:10]}"
    role = f"analyst_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_plain(postgres_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = _plain(postgres_url).rpartition("/")[0]
    owner_url = f"{base}/{name}"
    bus = EmbeddedEventBus(owner_url)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    for i in range(0, len(month.envelopes), 2000):
        await bus.publish(month.envelopes[i : i + 2000])
    await bus.stop()
    owner = await asyncpg.connect(owner_url)
    await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'analyst-pw'")
    await owner.execute(f'GRANT USAGE ON SCHEMA eventlog TO "{role}"')
    await owner.execute(f'GRANT SELECT ON eventlog.records, eventlog.partition_heads TO "{role}"')
    await owner.close()
    host = base.split("@", 1)[1]
    yield f"postgresql://{role}:analyst-pw@{host}/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
    await admin.close()


async def test_the_analyst_role_cannot_write(analyst_url: str) -> None:
    conn = await asyncpg.connect(analyst_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO eventlog.partition_heads (topic, partition) VALUES ('x', 0)"
            )
    finally:
        await conn.close()
    async with EmbeddedLogSource(analyst_url) as source:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await source.conn.execute("CREATE TEMP TABLE nope (x int)")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "duckdb"])
async def test_export_and_report_equal_the_truth(
    analyst_url: str, month: Month, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / ("month.duckdb" if fmt == "duckdb" else "month")
    async with EmbeddedLogSource(analyst_url) as source:
        result = await export(source, out, format=fmt, progress=False)  # type: ignore[arg-type]
    print(f"\n[embedded] {result.line()}")
    assert result.events == len(month.envelopes)  # duplicates are in the log too
    assert result.undecodable == 0
    report = build_report(out, tmp_path / "report")
    assert_report_matches(report.summary, month.truth)
    assert (tmp_path / "report" / "index.html").read_text().count("<img") == 7
    # The three questions of docs/analytics.md answer on every format.
    db = open_dataset(out)
    for sql in doc_queries():
        assert db.sql(sql).fetchall(), sql
    db.close()
    # Nothing new: a second run exports nothing and changes nothing.
    async with EmbeddedLogSource(analyst_url) as source:
        again = await export(source, out, format=fmt, progress=False)  # type: ignore[arg-type]
    assert again.events == 0 and again.skipped_by_checkpoint == len(month.envelopes)
    db = open_dataset(out)
    assert db.execute("SELECT count(*) FROM session_billed").fetchone() == (
        month.truth.billed
        + sum(1 for e in month.envelopes if e.type == "SessionBilled")
        - month.truth.by_type["SessionBilled"],
    )
    db.close()


class CrashingDuckDB(DuckDBWriter):
    """Inserts the first table of the N-th chunk, then dies inside the transaction."""

    def __init__(self, out: Path, crash_on: int) -> None:
        super().__init__(out)
        self.crash_on = crash_on
        self.calls = 0

    def write_chunk(self, topic: str, partition: int, first: int, last: int, rows: Any) -> None:
        self.calls += 1
        if self.calls != self.crash_on:
            return super().write_chunk(topic, partition, first, last, rows)
        db = self.db
        db.execute("BEGIN TRANSACTION")
        event_type, type_rows = sorted(rows.items())[0]
        from plugpay_analytics.flatten import table_name, to_arrow

        chunk = to_arrow(event_type, type_rows)  # noqa: F841
        db.execute(f"INSERT INTO {table_name(event_type)} BY NAME SELECT * FROM chunk")
        self.close()  # the process dies: the open transaction is lost
        raise RuntimeError("simulated crash in the middle of a chunk")


def _all_rows(path: Path) -> dict[str, Any]:
    db = duckdb.connect(str(path), read_only=True)
    tables = [r[0] for r in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    rows = {}
    for t in tables:
        sql = (
            f'SELECT * EXCLUDE (written_at) FROM "{t}" ORDER BY ALL'
            if t == "_checkpoints"
            else f'SELECT * FROM "{t}" ORDER BY ALL'
        )
        relation = db.sql(sql)
        # duckdb 2 has to_arrow_table; 1.x calls it arrow
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        rows[t] = fetch()
    db.close()
    return rows


async def test_duckdb_export_crashes_and_resumes_without_duplicates(
    analyst_url: str, month: Month, tmp_path: Path
) -> None:
    once = tmp_path / "once.duckdb"
    resumed = tmp_path / "resumed.duckdb"
    async with EmbeddedLogSource(analyst_url) as source:
        await export(source, once, format="duckdb", chunk_size=1500, progress=False)
        with pytest.raises(RuntimeError, match="simulated crash"):
            await export(
                source,
                resumed,
                chunk_size=1500,
                progress=False,
                writer=CrashingDuckDB(resumed, crash_on=9),
            )
        done = await export(source, resumed, format="duckdb", chunk_size=1500, progress=False)
    assert 0 < done.skipped_by_checkpoint < len(month.envelopes)
    assert done.skipped_by_checkpoint + done.events == len(month.envelopes)
    assert _all_rows(resumed) == _all_rows(once)
    db = duckdb.connect(str(resumed), read_only=True)
    total = sum(
        db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # type: ignore[index]
        for (t,) in db.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name NOT LIKE '\\_%' ESCAPE '\\'"
        ).fetchall()
    )
    db.close()
    assert total == len(month.envelopes)


async def test_projection_rebuild_reuses_the_replay_machinery(
    analyst_url: str, month: Month
) -> None:
    projection = SessionTotals()
    lines: list[str] = []
    async with EmbeddedLogSource(analyst_url) as source:
        progress = await rebuild_projection(
            source,
            [SESSIONS, METER],
            projection,
            batch_size=500,
            on_progress=lambda p: lines.append(p.line()),
        )
        with pytest.raises(ReadOnly):
            await SourceBus(source).publish(month.envelopes[:1])
    assert projection.resets == 1 and projection.closed and projection.flushes > 10
    assert len(projection.completed) == month.truth.completed
    assert sum(projection.completed.values()) == month.truth.energy_wh
    assert dict(projection.revenue) == month.truth.revenue_minor
    assert progress.undecodable == 0 and lines


async def test_export_from_an_offset_to_an_offset(analyst_url: str, tmp_path: Path) -> None:
    async with EmbeddedLogSource(analyst_url) as source:
        ranges = await source.plan("plugpay.sessions", Bound.at_offset(10), Bound.at_offset(25))
        result = await export(
            source,
            tmp_path / "slice",
            topics=["plugpay.sessions"],
            start=Bound.at_offset(10),
            end=Bound.at_offset(25),
            progress=False,
        )
    assert all(r.start == 10 and r.stop == 25 for r in ranges)
    assert result.events == 15 * len(ranges)
    db = duckdb.connect()
    offsets = db.execute(
        f"SELECT min(log_offset), max(log_offset) FROM read_parquet('{tmp_path}/slice/*/*.parquet',"
        " union_by_name = true)"
    ).fetchone()
    assert offsets == (10, 24)
