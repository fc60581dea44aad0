"""Overload on the phone: a code lookup or a scan refused for lack of capacity (503 ``busy`` +
Retry-After) shows "busy, retrying" and is sent again after the wait the server asked for, then
the session starts."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from web_support import log_in


def busy_once(times: list[float], *, retry_after_s: int) -> Callable[[Any], None]:
    """A route that answers its first call as session-svc's admission control does beyond
    capacity (503 ``busy`` + Retry-After) and lets the others through; ``times`` records when
    each call was sent."""

    def route_call(route: Any) -> None:
        times.append(time.monotonic())
        if len(times) == 1:
            route.fulfill(
                status=503,
                headers={"Retry-After": str(retry_after_s), "Content-Type": "application/json"},
                body='{"reason": "busy", "message": "Plugpay is busy right now."}',
            )
        else:
            route.continue_()

    return route_call


def test_a_busy_refusal_is_shown_and_the_scan_retried_after_retry_after(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    station = stations.connected["ST-0001"]
    issued = stations.run(station.request_code(2))
    sent: list[float] = []
    looked_up: list[float] = []
    quoted: list[float] = []
    phone.route("**/sessions/scan", busy_once(sent, retry_after_s=2))
    # The first call of the charge path, shed the same way; pricing-svc sheds its quote too.
    phone.route("**/sessions/codes/lookup", busy_once(looked_up, retry_after_s=1))
    phone.route("**/pricing/stations/*/quote*", busy_once(quoted, retry_after_s=1))
    log_in(phone, "driver@example.com")
    phone.get_by_label(re.compile("type the code", re.I)).fill(issued["code"])
    phone.get_by_role("button", name="Continue").click()
    expect(phone.locator("#price")).to_contain_text("EUR/kWh")
    assert len(looked_up) >= 2 and looked_up[1] - looked_up[0] >= 0.9
    assert len(quoted) == 2 and quoted[1] - quoted[0] >= 0.9
    expect(phone.locator("#scan-busy")).to_have_count(0)  # gone once the quote answered
    phone.get_by_role("button", name="Start charging").click()
    expect(phone.locator("#scan-busy")).to_have_text("Plugpay is busy, retrying…")
    expect(phone.locator("#status")).to_have_attribute("data-status", "charging", timeout=30_000)
    assert len(sent) == 2
    assert sent[1] - sent[0] >= 1.9  # the Retry-After the server gave, not an immediate retry
    stations.run(station.unplug(2))
    expect(phone.locator("#status")).to_have_attribute("data-status", "billed", timeout=40_000)
