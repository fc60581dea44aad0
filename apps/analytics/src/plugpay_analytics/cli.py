"""Analysts' commands: ``plugpay-analytics export|report|rebuild-projection|catalogue``
(docs/analytics.md). An app of its own: it reads the event log, never another app's code."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

COMMANDS = ("export", "report", "rebuild-projection", "catalogue")


def _time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2025-05-01T00:00:00Z")
    return value


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("event log (read-only)")
    group.add_argument(
        "--source",
        choices=["kafka", "embedded"],
        default=None,
        help="default: kafka when a bootstrap address is known, else embedded",
    )
    group.add_argument(
        "--kafka",
        default=os.environ.get("PLUGPAY_KAFKA_BOOTSTRAP"),
        help="bootstrap servers (PLUGPAY_KAFKA_BOOTSTRAP); SASL/TLS from "
        "PLUGPAY_KAFKA_SECURITY_PROTOCOL, _SASL_MECHANISM, _SASL_USERNAME, "
        "_SASL_PASSWORD, _SSL_CAFILE",
    )
    group.add_argument(
        "--eventlog-url",
        default=os.environ.get("PLUGPAY_EVENTLOG_DATABASE_URL"),
        help="PostgreSQL URL of the embedded log (PLUGPAY_EVENTLOG_DATABASE_URL); "
        "SELECT on eventlog.records and eventlog.partition_heads is enough",
    )
    group.add_argument("--topic-prefix", default=os.environ.get("PLUGPAY_TOPIC_PREFIX", ""))
    bounds = parser.add_argument_group("range (default: from the beginning up to now)")
    start = bounds.add_mutually_exclusive_group()
    start.add_argument(
        "--from-offset",
        metavar="N|P=N,...",
        help="first offset (inclusive), for every partition or per partition",
    )
    start.add_argument(
        "--from-time",
        type=_time,
        metavar="ISO",
        help="first record whose log time is at or after this",
    )
    end = bounds.add_mutually_exclusive_group()
    end.add_argument("--to-offset", metavar="N|P=N,...", help="stop before this offset")
    end.add_argument(
        "--to-time",
        type=_time,
        metavar="ISO",
        help="stop before the first record at or after this log time",
    )


def register(commands: Any) -> None:
    """Add the analysts' sub-commands to an argparse sub-parser collection."""
    export = commands.add_parser(
        "export",
        help="replay topics into Parquet, CSV or DuckDB (resumable, read-only)",
        description="Replay event topics into Parquet or CSV files (one folder per event type) or "
        "a DuckDB database (one table per event type). Resumes from its checkpoints: run the "
        "same command again after an interruption, or later to add what is new.",
    )
    export.add_argument(
        "topics",
        nargs="*",
        help="topics (plugpay.sessions or sessions); default: all but dead letters",
    )
    export.add_argument(
        "--out", type=Path, required=True, help="output folder (parquet, csv) or file (duckdb)"
    )
    export.add_argument(
        "--format",
        choices=["parquet", "csv", "duckdb"],
        help="default: duckdb for a .duckdb/.db out, else parquet",
    )
    export.add_argument(
        "--chunk-size", type=int, default=5000, help="records per partition per atomic chunk"
    )
    export.add_argument("--no-progress", action="store_true")
    _source_arguments(export)
    export.set_defaults(analytics=_export)

    report = commands.add_parser(
        "report", help="HTML report with PNG charts from an export (DuckDB queries)"
    )
    report.add_argument("--input", type=Path, required=True, help="an export folder or .duckdb")
    report.add_argument("--out", type=Path, required=True, help="folder for index.html and PNGs")
    report.add_argument(
        "--timezone", default=None, help="for days and hours; default: the stations' time zone"
    )
    report.set_defaults(analytics=_report)

    rebuild = commands.add_parser(
        "rebuild-projection",
        help="reset a read model and replay topics into it (plugpay_events.replay.Projection)",
    )
    rebuild.add_argument(
        "--projection",
        required=True,
        metavar="MODULE:FACTORY",
        help="a Projection, or a no-argument callable returning one",
    )
    rebuild.add_argument("topics", nargs="+", help="topics the projection reads")
    rebuild.add_argument("--batch-size", type=int, default=1000)
    _source_arguments(rebuild)
    rebuild.set_defaults(analytics=_rebuild)

    catalogue = commands.add_parser(
        "catalogue", help="the event catalogue (Markdown) from libs/events"
    )
    catalogue.add_argument("--write", type=Path, help="update the catalogue section of this file")
    catalogue.add_argument("--check", type=Path, help="exit 1 if this file's catalogue is stale")
    catalogue.set_defaults(analytics=_catalogue)


def _bounds(args: argparse.Namespace) -> tuple[Any, Any]:
    from plugpay_analytics.source import Bound

    def bound(offsets: str | None, at: dt.datetime | None, otherwise: Bound) -> Bound:
        if offsets:
            return Bound.parse_offsets(offsets)
        return Bound.at_time(at) if at else otherwise

    return (
        bound(args.from_offset, args.from_time, Bound.beginning()),
        bound(args.to_offset, args.to_time, Bound.now()),
    )


def _source(args: argparse.Namespace) -> Any:
    from plugpay_analytics.source import source_from

    return source_from(
        kafka_bootstrap=args.kafka,
        eventlog_url=args.eventlog_url,
        topic_prefix=args.topic_prefix,
        prefer=args.source,
    )


def _export(args: argparse.Namespace) -> int:
    from plugpay_analytics.export import DEFAULT_TOPICS, export
    from plugpay_analytics.rebuild import topics_named
    from plugpay_analytics.writers import Format

    fmt: Format = args.format or ("duckdb" if args.out.suffix in {".duckdb", ".db"} else "parquet")
    topics = [t.name for t in topics_named(args.topics)] if args.topics else list(DEFAULT_TOPICS)
    start, end = _bounds(args)
    written = {"chunks": 0, "events": 0}

    def seen(result: Any) -> None:
        written["chunks"], written["events"] = result.chunks, result.events

    async def run() -> Any:
        async with _source(args) as source:
            return await export(
                source,
                args.out,
                format=fmt,
                topics=topics,
                start=start,
                end=end,
                chunk_size=args.chunk_size,
                progress=False if args.no_progress else None,
                on_chunk=seen,
            )

    try:
        result = asyncio.run(run())
    except KeyboardInterrupt:
        print(
            f"\ninterrupted after {written['chunks']} complete chunks ({written['events']} "
            "events); run the same command again to resume without duplicates",
            file=sys.stderr,
        )
        return 130
    print(result.line())
    return 0


def _report(args: argparse.Namespace) -> int:
    from plugpay_analytics.report import build_report

    result = build_report(args.input, args.out, time_zone=args.timezone)
    totals = result.summary["totals"]
    revenue = ", ".join(r["formatted"] for r in result.summary["revenue"]) or "no revenue"
    print(
        f"{totals['sessions']} sessions, {totals['energy_wh'] / 1000:,.1f} kWh, {revenue}\n"
        f"report: {result.html}\ncharts: {', '.join(str(p) for p in result.charts)}"
    )
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from plugpay_analytics.rebuild import load_projection, rebuild_projection

    start, end = _bounds(args)

    async def run() -> Any:
        projection = await load_projection(args.projection)
        async with _source(args) as source:
            return await rebuild_projection(
                source,
                args.topics,
                projection,
                start=start,
                end=end,
                batch_size=args.batch_size,
                on_progress=lambda p: print(p.line(), file=sys.stderr),
            )

    print(asyncio.run(run()).line())
    return 0


def _catalogue(args: argparse.Namespace) -> int:
    from plugpay_analytics.catalogue import main as catalogue_main

    argv = (["--write", str(args.write)] if args.write else []) + (
        ["--check", str(args.check)] if args.check else []
    )
    return catalogue_main(argv)


def main(argv: list[str] | None = None) -> None:
    """``plugpay-analytics``: the analysts' commands."""
    parser = argparse.ArgumentParser(prog="plugpay-analytics", description=__doc__)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    raise SystemExit(args.analytics(args))


if __name__ == "__main__":
    main()
