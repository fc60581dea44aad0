"""What the driver's phone says when a charger's meter did not add up: the final screen of a
session held for review says so, with the receipt's plain-word note, not just a total."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from web_support import charge_once, log_in, shot


def test_a_held_session_tells_the_driver_it_is_under_review(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    session_id = charge_once(plugpay, stations, "ST-0001", 2, lie_wh=10_000_000)
    log_in(phone, "driver@example.com")
    expect(phone.get_by_role("heading", name="Charge")).to_be_visible()
    phone.goto(f"/app/#/session/{session_id}")
    final = phone.locator("#final")
    expect(final).to_contain_text("Charged")
    expect(final.locator("#under-review")).to_have_text("Under review")
    expect(final.locator(".receipt-note").first).to_contain_text("operator is reviewing")
    shot(phone, "app-under-review")
