"""The embedded front door refuses what the distributed gateway refuses (the services'
metrics, listed once in deploy/gateway/routes.yaml), and its own pages carry the page headers."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml
from fastapi import FastAPI
from plugpay_app.dispatch import PrefixDispatcher
from plugpay_app.embedded import INTERNAL_PATHS, landing_app

ROUTES = Path(__file__).resolve().parents[3] / "deploy" / "gateway" / "routes.yaml"


def test_the_embedded_front_door_hides_the_same_paths_as_the_gateway() -> None:
    assert set(INTERNAL_PATHS) == set(yaml.safe_load(ROUTES.read_text())["internal_paths"])


async def test_metrics_are_refused_at_the_front_door_but_the_service_still_answers() -> None:
    service = FastAPI()

    @service.get("/auth/{path:path}")
    async def anything(path: str) -> dict[str, str]:
        return {"path": path}

    dispatcher = PrefixDispatcher([("/auth", service)], internal_paths=INTERNAL_PATHS)
    dispatcher.started.add(id(service))  # no lifespan needed for this app
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=dispatcher), base_url="http://t"
    ) as client:
        for path in ("/auth/metrics", "/auth/metrics/"):
            refused = await client.get(path)
            assert refused.status_code == 403, path
            assert refused.json()["reason"] == "internal_path"
        assert (await client.get("/auth/me")).json() == {"path": "me"}
        assert (await client.get("/auth/metricsx")).status_code == 200
        unknown = await client.get("/nowhere")
        assert unknown.status_code == 404
        assert unknown.headers["x-content-type-options"] == "nosniff"


async def test_the_front_page_has_the_page_headers() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=landing_app("127.0.0.1", 8000)), base_url="http://t"
    ) as client:
        for path in ("/", "/docs"):
            page = await client.get(path)
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"], path
            assert page.headers["x-content-type-options"] == "nosniff"
        assert (await client.get("/nope")).headers["x-content-type-options"] == "nosniff"


async def test_the_web_front_ends_answer_nosniff(tmp_path: Path) -> None:
    from plugpay_app import web

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web.create_app(tmp_path)), base_url="http://t"
    ) as client:
        refused = await client.get("/s/not%20a%20token")
        assert refused.status_code == 404
        assert refused.headers["x-content-type-options"] == "nosniff"
