"""The fixed windows guest scans and typed-code lookups are counted in."""

from __future__ import annotations

from datetime import UTC, datetime

from session_svc.service import _fixed_window


def test_the_window_starts_on_its_boundary_and_retry_after_counts_to_the_next() -> None:
    now = datetime(2026, 5, 4, 12, 0, 42, 500_000, tzinfo=UTC)

    start, retry_after = _fixed_window(now, 60)

    assert start == datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    assert retry_after == 18  # 17.5 s left, rounded up


def test_retry_after_is_at_least_a_second_at_the_very_end_of_a_window() -> None:
    now = datetime(2026, 5, 4, 12, 9, 59, 999_999, tzinfo=UTC)

    start, retry_after = _fixed_window(now, 600)

    assert start == datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    assert retry_after == 1


def test_a_moment_on_the_boundary_opens_a_new_window() -> None:
    now = datetime(2026, 5, 4, 12, 10, tzinfo=UTC)

    assert _fixed_window(now, 600) == (now, 600)
