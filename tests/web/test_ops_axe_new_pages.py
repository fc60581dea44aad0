"""axe-core on the pages this part of the portal added: a session's page, the refund page, the
revenue period form, and the all-in-one's home, API docs index and station screens pages."""

from __future__ import annotations

from typing import Any

from ops_support import ops_login
from playwright.sync_api import expect
from web_support import DESKTOP, PHONE, axe, charge_once


def test_new_pages_have_no_serious_accessibility_violations(
    browser: Any, plugpay: Any, stations: Any
) -> None:
    session_id = charge_once(plugpay, stations, "ST-0002", 1)
    failures: dict[str, Any] = {}
    context = browser.new_context(base_url=plugpay.base_url, bypass_csp=True, **DESKTOP)
    page = context.new_page()
    ops_login(page, "operator@example.com")
    for hash_, ready in (
        (f"#/session/{session_id}", "#timeline"),
        (f"#/refund/{session_id}", "#refundable"),
        ("#/revenue", "#revenue-chart"),
        ("#/tariffs/DEMO-AC", "#preview-text"),
    ):
        page.goto("/ops/" + hash_)
        expect(page.locator(ready)).to_be_visible()
        failures["ops " + hash_.split("/")[1]] = axe(page)
    page.goto("/ops/#/")
    page.get_by_text("What the badges mean").click()
    failures["ops stations with badge help"] = axe(page)
    context.close()

    context = browser.new_context(base_url=plugpay.base_url, bypass_csp=True, **PHONE)
    page = context.new_page()
    for path in ("/", "/docs", "/station-screens", "/no-such-page"):
        page.goto(path)
        failures[path] = axe(page)
    context.close()
    bad = {name: v for name, v in failures.items() if v}
    assert not bad, bad
