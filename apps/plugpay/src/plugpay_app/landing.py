"""The all-in-one's own pages: the home page, the API docs index, the station screens' page and a
readable "not found"; and the one list of places a newcomer is sent to, which the home page and
the start-up banner both print (so every printed link is one of these pages, answering 200).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from plugpay_app.devmail import MAILBOX_PATH

# The demo's accounts and stations (auth-svc's seed, always on in the embedded mode).
DEMO_PASSWORD = "demo-password-1"
DEMO_STATION_PASSWORD = "demo-station-secret"
DEMO_SCREENS = ("ST-0001", "ST-0002")


@dataclass(frozen=True)
class Place:
    """One place a person is sent to: a name, its path, and what they find there."""

    name: str
    path: str
    what: str


def places(*, dev_mailbox: bool) -> list[Place]:
    """Where a newcomer goes, in the order they need it."""
    found = [
        Place("Driver app", "/app/", "pay for charging with your phone: scan, charge, receipt"),
        Place("Find a charger", "/app/#/find", "chargers near you, their prices and availability"),
        Place("Operator portal", "/ops/", "stations, sessions, tariffs, revenue, refunds"),
        Place(
            "Station screens",
            "/station-screens",
            "what a charger's display shows (it asks for the station's password)",
        ),
        Place("API docs", "/docs", "every service's HTTP API, to try in the browser"),
    ]
    if dev_mailbox:
        found.append(
            Place("Development mailbox", MAILBOX_PATH, "every mail Plugpay sent (links, receipts)")
        )
    return found


STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;font-size:1.05rem;line-height:1.5;color:#111827;
 background:#f3f4f6;margin:0;padding:1rem}
main{max-width:44rem;margin:0 auto}
h1{margin:.5rem 0;color:#08512c}
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
ul.places{list-style:none;padding:0;margin:0;display:grid;gap:.6rem}
ul.places li{background:#fff;border:1px solid #d1d5db;border-radius:12px;padding:.75rem 1rem}
ul.places a{font-weight:700;font-size:1.1rem;color:#08512c;display:inline-block;padding:.2rem 0}
p.what{margin:.1rem 0 0;color:#374151}
code{background:#e5e7eb;border-radius:4px;padding:0 .25rem;overflow-wrap:anywhere}
.card{background:#fff;border:1px solid #d1d5db;border-radius:12px;padding:.75rem 1rem}
"""


def _page(title: str, *body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<link rel=icon href='/app/icon.svg' type='image/svg+xml'>"
        f"<style>{STYLE}</style></head><body><main>{''.join(body)}</main></body></html>"
    )


def _place_list(items: Sequence[Place]) -> str:
    return (
        "<ul class=places>"
        + "".join(
            f"<li><a href='{html.escape(p.path)}'>{html.escape(p.name)}</a>"
            f"<p class=what>{html.escape(p.what)}</p></li>"
            for p in items
        )
        + "</ul>"
    )


def home_page(ws_base: str, *, dev_mailbox: bool) -> str:
    return _page(
        "Plugpay",
        "<h1>Plugpay</h1><p>Pay for EV charging by scanning the code on the charger.</p>",
        _place_list(places(dev_mailbox=dev_mailbox)),
        "<h2>Demo logins</h2><div class=card><p>Driver <code>driver@example.com</code>, "
        f"operator <code>operator@example.com</code>, both with the password "
        f"<code>{DEMO_PASSWORD}</code>.</p></div>",
        "<h2>Chargers</h2><div class=card><p>Chargers connect over OCPP 1.6, 2.0.1 or 2.1 to "
        f"<code>{html.escape(ws_base)}/ocpp/&lt;station id&gt;</code> with HTTP Basic "
        "authentication (the station id and its password).</p></div>",
    )


def docs_page(services: Sequence[tuple[str, str]]) -> str:
    """``services``: (name, path of its docs)."""
    return _page(
        "Plugpay API docs",
        "<p><a href='/'>Plugpay</a></p><h1>API docs</h1>"
        "<p>Each service's API, described and to try in the browser (log in through auth-svc's "
        "<code>POST /auth/token</code> and use Authorize).</p>",
        _place_list([Place(f"{name} API", path, path) for name, path in services]),
    )


def station_screens_page() -> str:
    links = [
        Place(
            f"Station {s}", f"/stations/{s}/display", f"user {s}, password {DEMO_STATION_PASSWORD}"
        )
        for s in DEMO_SCREENS
    ]
    return _page(
        "Plugpay station screens",
        "<p><a href='/'>Plugpay</a></p><h1>Station screens</h1>"
        "<p>A station screen is what a charger's own display shows: its connectors, the price "
        "and the QR code a driver scans. Only the station itself may open it, so your browser "
        "asks for a <strong>user name and password</strong>: enter the <strong>station id</strong> "
        f"as the user name and the demo stations' password <code>{DEMO_STATION_PASSWORD}</code>."
        "</p>",
        _place_list(links),
        "<p class=what>A station that is not connected shows as offline; <code>plugpay run</code> "
        "connects simulated ones unless started with <code>--stations 0</code>.</p>",
    )


def not_found_page(path: str) -> str:
    return _page(
        "Not found · Plugpay",
        "<h1>Nothing here</h1>"
        f"<p>There is no page at <code>{html.escape(path)}</code>. These are the places to go:</p>",
        _place_list(places(dev_mailbox=False)),
    )
