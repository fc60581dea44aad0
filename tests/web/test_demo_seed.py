"""The demo data is made through the public API (`plugpay seed`), as an operator and a driver
would: the tariffs and stations a newcomer meets, the driver's card and 20.00 EUR — and seeding
again changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from plugpay_app.demo import DEMO_STATIONS, DEMO_TARIFFS


def snapshot(plugpay: Any) -> dict[str, Any]:
    operator = plugpay.token("operator@example.com")
    driver = plugpay.token("driver@example.com")
    tariffs = plugpay.request("GET", "/pricing/tariffs", token=operator)[1]["items"]
    stations = {
        sid: plugpay.request("GET", f"/pricing/stations/{sid}", token=operator)[1]["commercials"]
        for sid in DEMO_STATIONS
    }
    return {
        "tariffs": sorted((t["key"], t["version"]) for t in tariffs),
        "stations": stations,
        "cards": [
            m["id"] for m in plugpay.request("GET", "/billing/payment-methods", token=driver)[1]
        ],
        "ledger": plugpay.request("GET", "/billing/ledger", token=driver)[1],
    }


def test_the_demo_is_seeded_through_the_api_and_seeding_again_changes_nothing(
    plugpay: Any,
) -> None:
    before = snapshot(plugpay)
    assert {key for key, _ in before["tariffs"]} >= set(DEMO_TARIFFS)
    assert all(
        c is not None and c["time_zone"] == "Europe/Berlin" for c in before["stations"].values()
    )
    assert before["stations"]["ST-0003"]["access_policy"]["kind"] == "restricted"
    assert len(before["cards"]) == 1
    quote = plugpay.request("GET", "/pricing/stations/ST-0001/quote?connector=2")[1]
    assert quote["text"] == "0.39 EUR/kWh + 1.00 EUR per session, incl. 19% VAT"
    # As an operator of a running installation would: the command, again.
    plugpay_command = Path(sys.executable).parent / "plugpay"
    subprocess.run(
        [str(plugpay_command), "seed", "--base-url", plugpay.base_url], check=True, timeout=120
    )
    assert snapshot(plugpay) == before
