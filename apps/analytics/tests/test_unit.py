"""Flattening, upcasting, money formatting, bounds and the catalogue — no infrastructure."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plugpay_analytics import catalogue
from plugpay_analytics.export import decode_row
from plugpay_analytics.flatten import UNDECODABLE, arrow_schema, event_columns, to_arrow
from plugpay_analytics.generator import Month
from plugpay_analytics.report import format_minor
from plugpay_analytics.source import Bound, LogRecord, _resolve
from plugpay_events import serde
from plugpay_events.registry import EVENT_TYPES

DOCS = Path(__file__).resolve().parents[3] / "docs" / "analytics.md"


def _record(envelope, offset: int = 7) -> LogRecord:
    return LogRecord(
        "plugpay.sessions",
        3,
        offset,
        dt.datetime(2025, 5, 1, tzinfo=dt.UTC),
        envelope.aggregate_id.encode(),
        serde.encode(envelope),
    )


def test_every_event_type_flattens_to_unique_columns() -> None:
    for name in EVENT_TYPES:
        names = [c.name for c in event_columns(name)]
        assert len(names) == len(set(names)), name
        assert arrow_schema(name).names == names


def test_v1_scans_are_upcast_on_read(month: Month) -> None:
    v1 = next(e for e in month.envelopes if e.type == "SessionCodeScanned" and e.version == 1)
    assert "code_kind" not in v1.payload
    table, row = decode_row(_record(v1))
    assert table == "SessionCodeScanned"
    assert row["event_version"] == 1 and row["schema_version"] == 3
    assert row["code_kind"] == "qr"
    assert row["log_partition"] == 3 and row["log_offset"] == 7


def test_nested_money_and_tariff_become_columns(month: Month) -> None:
    billed = next(e for e in month.envelopes if e.type == "SessionBilled")
    _, row = decode_row(_record(billed))
    assert row["charged_amount_minor"] == billed.payload["charged"]["amount_minor"]
    assert row["charged_currency"] == "EUR"
    priced = next(e for e in month.envelopes if e.type == "SessionPriced")
    _, row = decode_row(_record(priced))
    assert row["tariff_id"] in month.tariffs
    assert row["tariff_elements"].startswith("[")  # JSON text
    cost = next(e for e in month.envelopes if e.type == "SessionCostCalculated")
    _, row = decode_row(_record(cost))
    assert row["breakdown_total_incl_vat"] == row["total_amount_minor"]
    table = to_arrow("SessionCostCalculated", [row])
    assert table.num_rows == 1 and table.schema == arrow_schema("SessionCostCalculated")


def test_undecodable_records_are_kept_with_the_error() -> None:
    record = LogRecord("plugpay.sessions", 0, 1, None, b"k", b'{"type": "Nope"}')
    table, row = decode_row(record)
    assert table == UNDECODABLE
    assert "ValidationError" in row["error"] and row["value"] == '{"type": "Nope"}'
    to_arrow(UNDECODABLE, [row])


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_money_is_formatted_exactly(amount: int) -> None:
    text = format_minor(amount, "EUR")
    number = text.removesuffix(" EUR").replace(",", "")
    assert round(float(number) * 100) == amount
    assert format_minor(1234567, "JPY") == "1,234,567 JPY"


def test_bounds_resolve_within_the_partition() -> None:
    assert _resolve(Bound.beginning(), 0, 5, 50, None, is_end=False) == 5
    assert _resolve(Bound.now(), 0, 5, 50, None, is_end=True) == 50
    assert _resolve(Bound.at_offset(20), 0, 5, 50, None, is_end=False) == 20
    assert _resolve(Bound.at_offset(99), 0, 5, 50, None, is_end=True) == 50
    per = Bound.parse_offsets("0=10,3=30")
    assert per.offset_for(3) == 30 and per.offset_for(1) is None
    assert _resolve(per, 1, 0, 50, None, is_end=True) == 50
    assert _resolve(per, 1, 0, 50, None, is_end=False) == 0
    at = Bound.at_time(dt.datetime(2025, 5, 1, tzinfo=dt.UTC))
    assert _resolve(at, 0, 0, 50, None, is_end=False) == 50  # nothing that late
    assert _resolve(at, 0, 0, 50, 17, is_end=False) == 17
    with pytest.raises(ValueError):
        Bound.at_time(dt.datetime(2025, 5, 1))


def test_ground_truth_is_consistent(month: Month) -> None:
    truth = month.truth
    assert truth.completed > 2000 and truth.events > 30_000
    assert truth.codes_issued == truth.scanned + truth.codes_expired
    assert truth.scanned == truth.priced + truth.denials["access_denied"]
    assert truth.started == truth.completed == truth.billed
    assert truth.scanned_v1 > 0 and truth.duplicates > 0
    assert len(month.envelopes) == truth.events + truth.duplicates
    assert len({e.event_id for e in month.envelopes}) == truth.events
    assert isinstance(month.envelopes[0].event_id, uuid.UUID)


def test_docs_catalogue_is_generated_from_libs_events() -> None:
    text = DOCS.read_text()
    assert catalogue.replace_in(text) == text, (
        "docs/analytics.md is stale: run python -m plugpay_analytics.catalogue --write"
    )
    for name in EVENT_TYPES:
        assert f"`{name}`" in text


def test_cli_bounds_prefer_offsets_to_times_and_default_to_the_whole_log() -> None:
    from argparse import Namespace

    from plugpay_analytics.cli import _bounds

    at = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    none = Namespace(from_offset=None, from_time=None, to_offset=None, to_time=None)
    assert _bounds(none) == (Bound.beginning(), Bound.now())
    given_ = Namespace(from_offset="0=1200", from_time=at, to_offset=None, to_time=at)
    assert _bounds(given_) == (Bound.parse_offsets("0=1200"), Bound.at_time(at))
