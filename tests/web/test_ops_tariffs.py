"""The tariff editor keeps stored prices exact: 0.357 EUR/kWh opens as 0.357, an idle fee reads
per minute as drivers read it, the preview is the drivers' text, and publishing says how many
stations the change reaches before it goes live."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ops_support import desktop_page, ops_login
from playwright.sync_api import expect
from web_support import shot

EXACT = "0.357 EUR/kWh + 0.10 EUR/min idle, incl. 19% VAT"


@pytest.fixture
def desk(browser: Any, plugpay: Any) -> Any:
    with desktop_page(browser, plugpay) as page:
        yield page


def test_editor_round_trip_keeps_exact_prices(desk: Any, plugpay: Any, stations: Any) -> None:
    operator = plugpay.token("operator@example.com")
    # 0.30 excl. 19% VAT is 0.357 incl.; 5.042017/h excl. is 0.10/min incl.
    code, created = plugpay.request(
        "POST",
        "/pricing/tariffs",
        token=operator,
        json_body={
            "key": "WEB-EXACT",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [
                        {"type": "ENERGY", "price": "0.3", "vat": "19", "step_size": 1},
                        {"type": "PARKING_TIME", "price": "5.042017", "vat": "19", "step_size": 60},
                    ]
                }
            ],
        },
    )
    assert code == 201, created
    assert created["summary"] == EXACT
    stored = created["tariff"]["elements"][0]["price_components"]

    ops_login(desk, "operator@example.com")
    desk.get_by_role("link", name="Tariffs").click()
    card = desk.locator('[data-tariff="WEB-EXACT"]')
    expect(card).to_contain_text(EXACT)  # prices in the list
    expect(card).to_contain_text("version 1")
    card.get_by_role("link", name=re.compile("Edit")).click()
    energy = desk.get_by_label(re.compile("per kWh"))
    idle = desk.get_by_label(re.compile("per minute idle"))
    expect(energy).to_have_value("0.357")
    expect(idle).to_have_value("0.10")
    expect(desk.locator("#preview-text")).to_have_text(EXACT)

    desk.get_by_role("button", name="Publish new version").click()
    expect(desk.locator("#confirm-publish")).to_contain_text("0 stations")
    desk.get_by_role("button", name="Yes, publish").click()
    expect(desk.locator("#published")).to_have_text(f"Version 2 is live. Drivers now see: {EXACT}")
    latest = plugpay.request("GET", "/pricing/tariffs/WEB-EXACT", token=operator)[1]
    assert latest["version"] == 2
    assert latest["tariff"]["elements"][0]["price_components"] == stored
    desk.reload()
    expect(desk.get_by_label(re.compile("per kWh"))).to_have_value("0.357")

    # A typed price publishes what the preview promised.
    desk.get_by_label(re.compile("per kWh")).fill("0.449")
    expect(desk.locator("#preview-text")).to_have_text(
        "0.449 EUR/kWh + 0.10 EUR/min idle, incl. 19% VAT"
    )
    desk.get_by_role("button", name="Publish new version").click()
    desk.get_by_role("button", name="Yes, publish").click()
    expect(desk.locator("#published")).to_contain_text("Version 3 is live")
    latest = plugpay.request("GET", "/pricing/tariffs/WEB-EXACT", token=operator)[1]
    assert latest["summary"] == "0.449 EUR/kWh + 0.10 EUR/min idle, incl. 19% VAT"


def test_editor_preview_is_the_stations_quote_and_confirmation_counts_stations(
    desk: Any, plugpay: Any, stations: Any
) -> None:
    quote = plugpay.request("GET", "/pricing/stations/ST-0002/quote?connector=1")[1]
    name = quote["station_name"]
    ops_login(desk, "operator@example.com")
    desk.goto("/ops/#/tariffs/DEMO-DC")
    expect(desk.get_by_label(re.compile("per minute idle"))).to_have_value("0.10")
    expect(desk.locator("#preview-text")).to_have_text(quote["text"])
    desk.get_by_role("button", name="Publish new version").click()
    confirm = desk.locator("#confirm-publish")
    expect(confirm).to_contain_text(f"This changes the price at 1 station ({name})")
    shot(desk, "ops-tariff-confirm")
    desk.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    after = plugpay.request("GET", "/pricing/stations/ST-0002/quote?connector=1")[1]
    assert (after["tariff_version"], after["text"]) == (quote["tariff_version"], quote["text"])
