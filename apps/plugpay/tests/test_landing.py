"""The all-in-one's own pages: the places a newcomer is sent to, the same on the home page and
in the start-up banner; /ocpp/docs leads to the gateway's docs; a person's 404 is a page."""

from __future__ import annotations

import httpx
from plugpay_app.embedded import SERVICES, docs_redirects, landing_app, urls
from plugpay_app.landing import places


async def test_home_page_banner_and_docs_name_the_same_places() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=landing_app("127.0.0.1", 8000, dev_mailbox=True)),
        base_url="http://t",
    ) as client:
        home = (await client.get("/")).text
        banner = "\n".join(urls("127.0.0.1", 8000, dev_mailbox=True))
        for place in places(dev_mailbox=True):
            assert f"href='{place.path}'" in home
            assert f"http://127.0.0.1:8000{place.path}" in banner
        assert {"Driver app", "Operator portal", "Find a charger"} <= {
            p.name for p in places(dev_mailbox=False)
        }
        docs = (await client.get("/docs")).text
        for service in SERVICES:
            assert f"href='{service.docs_path}'" in docs
            assert f"http://127.0.0.1:8000{service.docs_path}" in banner
        # No service root (they answer JSON 404/401 to a browser) is printed any more.
        assert "http://127.0.0.1:8000/ocpp " not in banner + " "
        screens = await client.get("/station-screens")
        assert screens.status_code == 200 and "user name and password" in screens.text


async def test_ocpp_docs_lead_to_the_gateways_docs_and_404_is_a_page_for_people() -> None:
    assert docs_redirects() == ["/ocpp/docs"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=landing_app("127.0.0.1", 8000)), base_url="http://t"
    ) as client:
        moved = await client.get("/ocpp/docs")
        assert moved.status_code == 308 and moved.headers["location"] == "/stations/docs"
        person = await client.get("/nowhere", headers={"Accept": "text/html"})
        assert person.status_code == 404 and person.headers["content-type"].startswith("text/html")
        assert "href='/app/'" in person.text
        program = await client.get("/nowhere", headers={"Accept": "application/json"})
        assert program.status_code == 404 and program.json() == {"detail": "Not Found"}
