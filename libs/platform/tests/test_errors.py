"""Text PostgreSQL cannot store (a NUL byte) reaching a query is the request's fault: 422, not
500 (found by schemathesis on auth-svc's /auth/verify/resend, tests/reliability)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from plugpay_platform.errors import install_error_handlers
from sqlalchemy.exc import DBAPIError


class _AsyncpgLike(Exception):
    sqlstate = "22021"


def _app(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/x")
    async def x() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_nul_in_text_is_422() -> None:
    error = DBAPIError(
        "SELECT 1", {}, _AsyncpgLike('invalid byte sequence for encoding "UTF8": 0x00')
    )
    r = _app(error).get("/x")
    assert r.status_code == 422
    assert r.json()["reason"] == "invalid_request"


def test_a_lost_database_connection_is_503_with_retry_after() -> None:
    lost = DBAPIError(
        "SELECT 1", {}, Exception("connection is closed"), connection_invalidated=True
    )
    r = _app(lost).get("/x")
    assert (r.status_code, r.headers["Retry-After"]) == (503, "1")
    assert r.json()["reason"] == "database_unavailable"


def test_other_errors_stay_500() -> None:
    assert _app(RuntimeError("boom")).get("/x").status_code == 500
    assert _app(DBAPIError("SELECT 1", {}, Exception("deadlock"))).get("/x").status_code == 500
