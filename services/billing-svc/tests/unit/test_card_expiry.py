"""When a driver is told a saved card expires: within 30 days of the end of its expiry month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing_svc.domain import card_expiry_due, card_valid_until
from hypothesis import given
from hypothesis import strategies as st


def test_a_card_is_good_through_its_expiry_month() -> None:
    assert card_valid_until(2, 2026) == datetime(2026, 3, 1, tzinfo=UTC)
    assert card_valid_until(12, 2026) == datetime(2027, 1, 1, tzinfo=UTC)


def test_notice_starts_30_days_before_the_end() -> None:
    end = datetime(2026, 3, 1, tzinfo=UTC)
    assert not card_expiry_due(2, 2026, end - timedelta(days=31))
    assert card_expiry_due(2, 2026, end - timedelta(days=30))
    assert card_expiry_due(2, 2026, end + timedelta(days=400))  # expired: still worth saying
    assert not card_expiry_due(None, 2026, end)


@given(st.integers(1, 12), st.integers(2000, 2100), st.integers(-5000, 5000))
def test_the_notice_never_comes_back_once_due(month: int, year: int, hours: int) -> None:
    now = card_valid_until(month, year) + timedelta(hours=hours)
    if card_expiry_due(month, year, now):
        assert card_expiry_due(month, year, now + timedelta(days=1))
