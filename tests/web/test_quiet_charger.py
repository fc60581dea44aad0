"""A charger that stops reporting in the middle of a session: the driver's session page says so
(and what they will pay) instead of showing "Charging" with a running timer and no word."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from web_support import DEMO_PASSWORD, log_in


def test_a_charger_that_stops_reporting_is_explained(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    from plugpay_simulator.driver import DriverClient
    from plugpay_testing import eventually

    station = stations.connected["ST-0002"]

    async def start() -> str:
        issued = await station.request_code(1)
        async with DriverClient(plugpay.base_url) as driver:
            await driver.login("driver@example.com", DEMO_PASSWORD)
            session_id = await driver.scan(issued["qr"])
            await driver.wait_for_state(session_id, {"charging"}, timeout_s=30)
            tx = station.transactions[1]
            await eventually(lambda: tx.meter_wh > tx.meter_start_wh, within=30, what="energy")
            return str(session_id)

    async def stop(session_id: str) -> None:
        async with DriverClient(plugpay.base_url) as driver:
            await driver.login("driver@example.com", DEMO_PASSWORD)
            await driver.stop(session_id)
            await driver.wait_for_state(session_id, {"billed"}, timeout_s=40)
        await station.unplug(1)

    session_id = str(stations.run(start(), timeout=60))
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
        stations.run(stop(session_id), timeout=60)
