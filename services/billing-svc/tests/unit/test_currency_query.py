"""``?currency=`` must be a known ISO-4217 code: an unknown one (``TWJ``) used to reach
``Money`` and answer 500 (found by schemathesis, tests/reliability)."""

from __future__ import annotations

from billing_svc.endpoints import Currency
from fastapi import FastAPI
from fastapi.testclient import TestClient
from plugpay_platform.errors import install_error_handlers


def test_unknown_currency_is_422() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/x")
    async def x(currency: Currency = "EUR") -> dict[str, str]:
        return {"currency": currency}

    client = TestClient(app)
    assert client.get("/x?currency=TWJ").status_code == 422
    assert client.get("/x?currency=eur").status_code == 422
    assert client.get("/x?currency=CHF").json() == {"currency": "CHF"}
    assert client.get("/x").json() == {"currency": "EUR"}
