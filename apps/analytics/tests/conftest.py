"""Shared fixtures: one generated month (helpers in analytics_truth.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from plugpay_analytics.generator import Month, generate_month

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def month() -> Month:
    """About 3,000 code issues / 2,300 charging sessions / 37,000 events in May 2025."""
    return generate_month()
