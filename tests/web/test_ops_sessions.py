"""Sessions in the operator portal: a forgiving station filter, readable statuses, the driver,
every status to filter by, a wrong period said so; and a session's own page (timeline, cost
breakdown, receipt, refunds, review state)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ops_support import desktop_page, ops_login
from playwright.sync_api import expect
from web_support import charge_once, shot


@pytest.fixture
def desk(browser: Any, plugpay: Any) -> Any:
    with desktop_page(browser, plugpay) as page:
        yield page


def test_sessions_list_filters_and_the_session_page(desk: Any, plugpay: Any, stations: Any) -> None:
    session_id = charge_once(plugpay, stations, "ST-0001", 1)
    me = plugpay.request("GET", "/auth/me", token=plugpay.token("driver@example.com"))[1]
    driver_ref = str(me["user_id"])[:8]
    ops_login(desk, "operator@example.com")
    desk.get_by_role("link", name="Sessions").click()
    status = desk.get_by_label("Status")
    expect(status.locator("option[value=code_issued]")).to_have_text("Code shown")
    status.select_option(label="Billed")
    desk.get_by_label("Station").fill("st-0001")  # any case
    desk.get_by_role("button", name="Filter").click()
    row = desk.locator(f'#sessions tr[data-session="{session_id}"]')
    expect(row).to_be_visible()
    expect(row.locator("td").nth(2)).to_have_text("Billed")
    expect(row.locator("td").nth(3)).to_have_text(driver_ref)
    expect(desk.locator("#sessions thead")).to_contain_text("Driver")

    desk.get_by_label("From").fill("2026-03-10")
    desk.get_by_label("To").fill("2026-03-01")
    desk.get_by_role("button", name="Filter").click()
    expect(desk.locator("#bad-period")).to_contain_text("The From date is after the To date")
    expect(desk.locator("#sessions")).to_have_count(0)

    desk.goto("/ops/#/sessions?station=ST-0001&status=billed")
    desk.locator(f'#sessions tr[data-session="{session_id}"] td').first.get_by_role("link").click()
    expect(desk.get_by_role("heading", name=f"Session {session_id[:8]}")).to_be_visible()
    expect(desk.locator("#session-status")).to_have_text("Billed")
    zone = plugpay.request(
        "GET", "/pricing/stations/ST-0001", token=plugpay.token("operator@example.com")
    )[1]["commercials"]["time_zone"]
    expect(desk.locator("#session-times")).to_contain_text(f"({zone} time)")
    started = plugpay.request(
        "GET", f"/sessions/{session_id}", token=plugpay.token("operator@example.com")
    )[1]["started_at"]
    local = datetime.fromisoformat(started).astimezone(ZoneInfo(zone))
    expect(desk.locator("#session-times")).to_contain_text(f"{local:%-I:%M %p}")
    timeline = desk.locator("#timeline li")
    expect(timeline.first).to_contain_text("Code shown on ST-0001 connector 1")
    expect(timeline.last).to_contain_text("Billed")
    for kind in ("scanned", "authorised", "charging_started", "stop_requested", "completed"):
        expect(desk.locator(f'#timeline li[data-kind="{kind}"]')).to_have_count(1)
    expect(desk.locator("#cost-lines tbody tr").first).to_be_visible()
    expect(desk.locator("#cost-lines")).to_contain_text("Session fee")
    expect(desk.locator("#no-refunds")).to_be_visible()
    expect(desk.locator("#review-state")).to_contain_text("Not held")
    # The station's readings, the evidence behind the bill, as a chart and in words.
    meter = plugpay.request(
        "GET",
        f"/stations/ST-0001/sessions/{session_id}/meter",
        token=plugpay.token("operator@example.com"),
    )[1]
    assert len(meter["samples"]) >= 1, meter
    expect(desk.locator("#meter-chart")).to_be_visible()
    expect(desk.locator("#meter-summary")).to_contain_text(
        f"{len(meter['samples'])} readings from the station"
    )
    expect(desk.locator("#meter-summary")).to_contain_text(
        f"→ {meter['samples'][-1]['energy_wh']} Wh"
    )
    shot(desk, "ops-session")
    with desk.expect_download() as download:
        desk.get_by_role("button", name="Download the receipt (PDF)").click()
    path = download.value.path()
    assert path is not None and Path(path).read_bytes()[:4] == b"%PDF"

    # A refund shows on the session's page with its reason.
    desk.get_by_role("link", name=re.compile("^Refund$")).click()
    desk.get_by_label(re.compile("Amount")).fill("0.10")
    desk.get_by_label(re.compile("Reason")).fill("slow charging at the start")
    desk.get_by_role("button", name="Refund").click()
    expect(desk.locator("#refunded")).to_be_visible()
    desk.goto(f"/ops/#/session/{session_id}")
    expect(desk.locator("#refund-list")).to_contain_text("slow charging at the start")


def test_another_organisations_session_page_is_not_found(
    desk: Any, plugpay: Any, stations: Any
) -> None:
    session_id = plugpay.request(
        "GET", "/sessions?scope=mine&limit=1", token=plugpay.token("driver@example.com")
    )[1]["items"][0]["session_id"]
    plugpay.other_operator("Session CPO", "session-operator@example.com", "other-password-1")
    ops_login(desk, "session-operator@example.com", "other-password-1")
    desk.goto(f"/ops/#/session/{session_id}")
    expect(desk.get_by_role("alert")).to_contain_text("Not found")
    expect(desk.locator("#timeline")).to_have_count(0)
