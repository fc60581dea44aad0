"""Every service's HTTP surface: API docs from the pinned package (no CDN) under the app's
security headers, and ``nosniff`` on every response, JSON included."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.testclient import TestClient
from plugpay_events.bus.embedded import EmbeddedEventBus
from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.app import build_service_app
from plugpay_platform.errors import Refusal
from plugpay_platform.http_security import APP_CSP, swagger_ui_folder
from plugpay_platform.runtime import ServiceRuntime
from plugpay_platform.settings import ServiceSettings
from pydantic import SecretStr
from sqlalchemy import MetaData

UNUSED_URL = "postgresql+asyncpg://nobody@127.0.0.1:9/none"  # no lifespan: never connected


def client() -> TestClient:
    router = APIRouter()

    @router.get("/demo/thing")
    async def thing() -> dict[str, int]:
        return {"n": 1}

    @router.get("/demo/refused")
    async def refused() -> None:
        raise Refusal("not_allowed", "no", status_code=403)

    runtime = ServiceRuntime(
        name="demo",
        settings=ServiceSettings(database_url=SecretStr(UNUSED_URL)),
        migrations=Path("."),
        outbox_tables=define_outbox_tables(MetaData()),
        bus_factory=lambda: EmbeddedEventBus(UNUSED_URL),
    )
    app = build_service_app(runtime, [router], title="Demo", prefix="/demo")
    return TestClient(app)


def test_api_docs_come_from_the_package_with_the_app_headers() -> None:
    http = client()
    page = http.get("/demo/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert "<script>" not in page.text  # no inline script: the policy can forbid them
    assert 'data-openapi-url="/demo/openapi.json"' in page.text
    csp = page.headers["content-security-policy"]
    assert csp.startswith(APP_CSP) and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp.replace(APP_CSP, "")  # scripts: the policy's own only
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    bundle = http.get("/demo/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert bundle.content == (swagger_ui_folder() / "swagger-ui-bundle.js").read_bytes()
    assert bundle.headers["content-type"].startswith("text/javascript")
    init = http.get("/demo/docs/assets/docs.js")
    assert "SwaggerUIBundle" in init.text and "dataset.openapiUrl" in init.text
    assert http.get("/demo/docs/assets/swagger-editor-bundle.js").status_code == 404
    assert http.get("/demo/docs/assets/..%2Fcore.py").status_code == 404


def test_json_answers_say_nosniff() -> None:
    http = client()
    for path, status in (("/demo/thing", 200), ("/demo/refused", 403), ("/demo/nope", 404)):
        response = http.get(path)
        assert response.status_code == status
        assert response.headers["x-content-type-options"] == "nosniff", path
    assert http.get("/demo/openapi.json").headers["x-content-type-options"] == "nosniff"


def test_the_page_policy_lets_in_stripe_js_and_nothing_else_from_outside() -> None:
    directives = dict(d.strip().split(" ", 1) for d in APP_CSP.split(";"))
    # Cards are typed into Stripe.js's Card Element (its iframe and its API) when Stripe is the
    # processor; no other origin, and never inline or evaluated script.
    assert directives["script-src"] == "'self' https://js.stripe.com"
    assert directives["frame-src"] == "https://js.stripe.com https://hooks.stripe.com"
    assert directives["connect-src"] == "'self' https://api.stripe.com"
    assert "unsafe" not in APP_CSP
    outside = {w for v in directives.values() for w in v.split() if w.startswith("https://")}
    assert outside == {
        "https://js.stripe.com",
        "https://hooks.stripe.com",
        "https://api.stripe.com",
    }
