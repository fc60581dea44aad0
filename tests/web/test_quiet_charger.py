"""A charger that stops reporting in the middle of a session: the driver's session page says so
(and what they will pay) instead of showing "Charging" with a running timer and no word."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from web_support import log_in, start_charging, stop_and_unplug


def test_a_charger_that_stops_reporting_is_explained(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    station = stations.connected["ST-0002"]
    session_id = stations.run(start_charging(plugpay.base_url, station, 1), timeout=60)
    try:
        phone.clock.install()
        log_in(phone, "driver@example.com")
        expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
        phone.goto(f"/app/#/session/{session_id}")
        expect(phone.locator("#status")).to_have_attribute("data-status", "charging")
        expect(phone.locator("#charger-quiet")).to_have_count(0)
        # Seven minutes pass on the phone with no reading newer than the last one it saw.
        phone.clock.fast_forward("07:00")
        quiet = phone.locator("#charger-quiet")
        expect(quiet).to_contain_text("The charger stopped reporting.")
        expect(quiet).to_contain_text("you pay only for the")
    finally:
        stations.run(stop_and_unplug(plugpay.base_url, station, 1, session_id), timeout=60)
