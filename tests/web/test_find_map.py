"""Find a charger's map and list: chargers at one spot share one pin and one label (their
names were written over each other), and every charger with a position offers directions."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect


def test_chargers_at_one_spot_share_a_pin_and_each_has_directions(
    phone: Any, plugpay: Any, stations: Any
) -> None:
    code, real = plugpay.request("GET", "/pricing/stations/public")
    assert code == 200, real
    market = next(item for item in real["items"] if item["station_id"] == "ST-0001")
    # A second charger on the same car park, as the directory would list it.
    twin = {**market, "station_id": "ST-TWIN", "name": "Demo Market Square 2"}
    answer = {**real, "items": [*real["items"], twin]}
    phone.route("**/pricing/stations/public*", lambda route: route.fulfill(json=answer))
    phone.goto("/app/#/find")
    expect(phone.locator('[data-station="ST-TWIN"]')).to_be_visible()
    shared = phone.locator('svg.map g[data-pin="ST-0001 ST-TWIN"]')
    expect(shared).to_contain_text("2 chargers")
    expect(phone.locator("svg.map g")).to_have_count(len(real["items"]))  # one pin fewer
    directions = phone.locator('[data-station="ST-0001"] a.directions')
    expect(directions).to_have_attribute(
        "href",
        "https://www.google.com/maps/dir/?api=1"
        f"&destination={market['latitude']},{market['longitude']}",
    )
