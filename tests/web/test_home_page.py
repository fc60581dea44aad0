"""What a newcomer meets first: the home page lists the driver app, the operator portal and
"Find a charger"; every link on it (and on the pages it leads to) answers 200 with a page a
person can read; the start-up banner prints only such pages; the API docs work offline."""

from __future__ import annotations

import urllib.request
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect
from plugpay_app.embedded import urls
from web_support import PHONE, STATION_PASSWORD, shot


def readable(page: Any, url: str) -> None:
    """``url`` answers 200 with an HTML page that shows a heading (never a JSON body)."""
    page.goto("about:blank")  # a link to a fragment of the page before is a real load too
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    assert response.headers["content-type"].startswith("text/html"), url
    expect(page.locator("h1, h2").first).to_be_visible()
    assert page.title().strip(), url
    assert not page.locator("body").inner_text().lstrip().startswith("{"), url


def links(page: Any) -> list[str]:
    return page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")


def test_every_link_on_the_home_page_leads_to_a_readable_page(
    browser: Any, plugpay: Any, stations: Any
) -> None:
    context = browser.new_context(base_url=plugpay.base_url, **PHONE)
    page = context.new_page()
    page.goto("/")
    shot(page, "home-phone")
    # It reads well on a phone: nothing wider than the screen, the places as big links.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for name in ("Driver app", "Find a charger", "Operator portal", "Station screens", "API docs"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    home = links(page)
    paths = {
        urlsplit(u).path + ("#" + urlsplit(u).fragment if urlsplit(u).fragment else "")
        for u in home
    }
    assert {"/app/", "/app/#/find", "/ops/", "/station-screens", "/docs", "/dev/mailbox"} <= paths

    seen: set[str] = set()
    for url in home:
        readable(page, url)
        seen.add(url)
    # One level further: the API docs index and the station screens' page.
    page.goto("/docs")
    for url in links(page):
        if url not in seen:
            readable(page, url)
            seen.add(url)
    page.goto("/station-screens")
    expect(page.locator("main")).to_contain_text("user name and password")
    expect(page.locator("main")).to_contain_text(STATION_PASSWORD)
    screens = [u for u in links(page) if "/display" in u]
    assert len(screens) == 2
    context.close()
    for url in screens:
        station_id = urlsplit(url).path.split("/")[2]
        # With what the page says to type at the prompt, the screen opens.
        station = browser.new_context(
            base_url=plugpay.base_url,
            http_credentials={"username": station_id, "password": STATION_PASSWORD},
        )
        readable(station.new_page(), url)
        station.close()


def test_the_banner_prints_only_pages_a_person_can_read(plugpay: Any) -> None:
    port = urlsplit(plugpay.base_url).port
    printed = [
        word
        for line in urls("127.0.0.1", port, dev_mailbox=True)
        for word in line.split()
        if word.startswith("http://")
    ]
    text = "\n".join(urls("127.0.0.1", port, dev_mailbox=True))
    for name in ("Driver app", "Operator portal", "Find a charger"):
        assert name in text
    assert any(u.endswith("/app/#/find") for u in printed)
    for url in printed:
        request = urllib.request.Request(url, headers={"Accept": "text/html"})
        with urllib.request.urlopen(request, timeout=15) as answer:
            assert answer.status == 200, url
            assert answer.headers["content-type"].startswith("text/html"), url


def test_api_docs_work_offline_and_ocpp_docs_lead_to_the_gateways(
    browser: Any, plugpay: Any
) -> None:
    context = browser.new_context(base_url=plugpay.base_url)
    page = context.new_page()
    origin = plugpay.base_url
    elsewhere: list[str] = []

    def only_here(route: Any) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:  # as if offline: nothing from a CDN
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    response = page.goto("/ocpp/docs")
    assert response is not None and response.status == 200
    assert urlsplit(page.url).path == "/stations/docs"
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("station")
    page.goto("/pricing/docs")
    expect(page.locator(".swagger-ui .info .title")).to_be_visible()
    assert elsewhere == []
    # A mistyped address gets a page with the way back, not JSON.
    missing = page.goto("/no-such-page")
    assert missing is not None and missing.status == 404
    expect(page.get_by_role("link", name="Driver app")).to_be_visible()
    context.close()
