"""Live station status in both front-ends: the driver's "Find a charger" (pricing-svc's public
directory) and the operator's stations page (station-gateway's operator view) follow a simulated
station whose connector starts charging, without a reload."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from web_support import DEMO_PASSWORD, DESKTOP, log_in, shot, start_charging, stop_and_unplug


def test_find_a_charger_and_ops_status_follow_a_station_that_starts_charging(
    phone: Any, browser: Any, plugpay: Any, stations: Any
) -> None:
    # The public API itself: no token needed, cacheable, both connected stations online.
    code, body = plugpay.request("GET", "/pricing/stations/public?lat=52.52&lon=13.405")
    assert code == 200, body
    listed = {s["station_id"]: s for s in body["items"]}
    assert set(listed) == {"ST-0001", "ST-0002"}, listed  # ST-0003 is for the staff only
    assert listed["ST-0001"]["distance_km"] == 0 and listed["ST-0001"]["online"]

    # No account needed to find a charger: from the login page, anonymously.
    phone.goto("/app/#/login")
    phone.get_by_role("link", name="Find a charger near you").click()
    expect(phone.locator('[data-station="ST-0002"] .price')).to_contain_text("EUR/kWh")
    expect(phone.get_by_role("link", name="Log in")).to_be_visible()

    log_in(phone, "driver@example.com")
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    phone.goto("/app/#/find")
    expect(phone.get_by_role("heading", name="Find a charger")).to_be_visible()
    market = phone.locator('[data-station="ST-0001"]')
    motorway = phone.locator('[data-station="ST-0002"]')
    expect(market).to_contain_text("Demo Market Square")
    expect(market).to_contain_text("Market Square 1, Demo City")
    expect(market.locator(".price")).to_contain_text("EUR/kWh")
    expect(motorway.locator(".price")).to_contain_text("EUR/kWh")
    expect(motorway).to_contain_text("DC 150.0 kW")
    expect(phone.locator('[data-station="ST-0003"]')).to_have_count(0)
    connector = market.locator('[data-connector="2"]')
    expect(connector).to_have_attribute("data-status", "Available")
    expect(market).to_contain_text(re.compile(r"[12] of 2 free"))
    expect(phone.locator("svg.map circle")).to_have_count(2)

    desk_context = browser.new_context(base_url=plugpay.base_url, **DESKTOP)
    desk_context.set_default_timeout(15_000)
    desk = desk_context.new_page()
    desk.goto("/ops/#/login")
    desk.get_by_label("E-mail").fill("operator@example.com")
    desk.get_by_label("Password").fill(DEMO_PASSWORD)
    desk.get_by_role("button", name="Log in").click()
    ops_station = desk.locator('[data-station="ST-0001"]')
    expect(ops_station).to_have_attribute("data-online", "true")
    ops_connector = ops_station.locator('[data-connector="2"]')
    expect(ops_connector).to_have_attribute("data-status", "Available")
    expect(desk.locator('[data-station="ST-0003"]')).to_have_attribute("data-online", "false")

    # A driver starts charging at ST-0001's connector 2 (over the APIs, like `plugpay drive`).
    station = stations.connected["ST-0001"]
    session_id = stations.run(start_charging(plugpay.base_url, station, 2), timeout=60)
    try:
        # Same pages, no reload: both follow.
        expect(connector).to_have_attribute("data-status", "Charging", timeout=30_000)
        expect(connector).to_contain_text("Charging")
        expect(market).to_contain_text(re.compile(r"[01] of 2 free"))
        shot(phone, "app-find")
        expect(ops_connector).to_have_attribute("data-status", "Charging", timeout=20_000)
        expect(ops_connector.locator(".session")).to_have_attribute("data-session", str(session_id))
        expect(ops_connector.locator(".session")).to_contain_text(re.compile(r"charging.*kWh"))
        shot(desk, "ops-stations")
        # The station's own page: the same live status in detail.
        desk.goto("/ops/#/stations/ST-0001")
        detail = desk.locator("#live-status")
        expect(detail).to_contain_text("Online")
        expect(detail).to_contain_text("OCPP 1.6")
        expect(detail.locator('[data-connector="2"]')).to_have_attribute("data-status", "Charging")
        expect(detail.locator('[data-connector="2"] .session')).to_contain_text("charging")
        desk.goto("/ops/#/")
    finally:
        stations.run(stop_and_unplug(plugpay.base_url, station, 2, session_id), timeout=60)
    expect(connector).to_have_attribute("data-status", "Available", timeout=30_000)
    expect(ops_connector).to_have_attribute("data-status", "Available", timeout=20_000)
    desk_context.close()
