"""Revenue in the operator portal: a chosen period, stations by name, a chart whose labels stay
inside it; the stations page explains its badges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ops_support import desktop_page, ops_login
from playwright.sync_api import expect
from web_support import charge_once, shot


@pytest.fixture
def desk(browser: Any, plugpay: Any) -> Any:
    with desktop_page(browser, plugpay) as page:
        yield page


def test_revenue_for_a_chosen_period_by_station_name(
    desk: Any, plugpay: Any, stations: Any
) -> None:
    charge_once(plugpay, stations, "ST-0001", 1)
    name = plugpay.request("GET", "/pricing/stations/ST-0001/quote?connector=1")[1]["station_name"]
    ops_login(desk, "operator@example.com")
    desk.get_by_role("link", name="Revenue").click()
    today = datetime.now(UTC).date()
    desk.get_by_label("From").fill((today - timedelta(days=6)).isoformat())
    desk.get_by_label("To (included)").fill((today + timedelta(days=1)).isoformat())
    desk.get_by_role("button", name="Show").click()
    expect(desk.locator("#period-text")).to_contain_text("(8 days)")
    row = desk.locator('#per-station tr[data-station="ST-0001"]')
    expect(row.locator("td").first).to_contain_text(name)
    expect(desk.locator("#revenue-total")).to_contain_text("€")
    # Every label of the chart lies inside the picture (none cut off at an edge).
    chart = desk.locator("#revenue-chart")
    expect(chart).to_be_visible()
    outside = chart.evaluate(
        """svg => [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBBox()])
             .filter(([, b]) => b.x < 0 || b.y < 0 || b.x + b.width > 720 || b.y + b.height > 250)
             .map(([text]) => text)"""
    )
    assert outside == []
    assert chart.locator("text").count() >= 3
    shot(desk, "ops-revenue-period")

    desk.get_by_label("From").fill(today.isoformat())
    desk.get_by_label("To (included)").fill((today - timedelta(days=3)).isoformat())
    desk.get_by_role("button", name="Show").click()
    expect(desk.locator("#bad-period")).to_contain_text("The From date is after the To date")


def test_stations_page_explains_its_badges(desk: Any, plugpay: Any, stations: Any) -> None:
    ops_login(desk, "operator@example.com")
    card = desk.locator('[data-station="ST-0001"]')
    expect(card.locator("[data-presence]")).to_have_attribute("title", "Connected to Plugpay now")
    expect(card.locator("[data-service]")).to_have_attribute("title", "Offered to drivers")
    help_ = desk.locator("#badge-help")
    help_.get_by_text("What the badges mean").click()
    expect(help_).to_contain_text("Whether the charger is connected to Plugpay right now")
    expect(help_).to_contain_text("A station can be in service and offline")
