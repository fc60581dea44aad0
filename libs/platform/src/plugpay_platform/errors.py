"""Errors are values at the edge: every refusal is ``{"reason", "message"}`` with a 4xx."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx answer."""

    reason: str
    message: str
    errors: list[dict[str, Any]] | None = None


class Refusal(Exception):
    """A use case said no; endpoints turn it into a 4xx with the same fields everywhere."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status_code: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status_code = status_code
        self.headers = headers


_STATUS_REASONS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def install_error_handlers(app: FastAPI) -> None:
    """Map refusals, validation errors and HTTP errors to the shared error body."""

    @app.exception_handler(Refusal)
    async def refusal(_: Request, exc: Refusal) -> JSONResponse:
        return JSONResponse(
            ErrorBody(reason=exc.reason, message=exc.message).model_dump(exclude_none=True),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(
            jsonable_encoder(
                ErrorBody(
                    reason="invalid_request", message="the request is not valid", errors=errors
                )
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if isinstance(detail, dict) and "reason" in detail:
            body = detail
        else:
            body = {
                "reason": _STATUS_REASONS.get(exc.status_code, "error"),
                "message": str(detail),
            }
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        # Handled here (not only below) so that a 422 is not also logged as a crash.
        if _unstorable_text(exc):
            return _bad_text()
        if exc.connection_invalidated:
            # The connection died under this request (a database restart, a dropped link); the
            # pool has already replaced it, so the same request asked again goes through.
            return JSONResponse(
                {"reason": "database_unavailable", "message": "the database connection was lost"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        raise exc

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        if _unstorable_text(exc):
            return _bad_text()
        log.exception("unhandled error")
        return JSONResponse(
            {"reason": "internal_error", "message": "something went wrong on our side"},
            status_code=500,
        )


def _bad_text() -> JSONResponse:
    # Text PostgreSQL cannot hold (a NUL byte) reached a query: the request's fault.
    return JSONResponse(
        {"reason": "invalid_request", "message": "the request contains invalid text"},
        status_code=422,
    )


# character_not_in_repertoire (NUL in text), untranslatable_character
_BAD_TEXT_SQLSTATES = {"22021", "22P05"}


def _unstorable_text(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if getattr(seen, "sqlstate", None) in _BAD_TEXT_SQLSTATES:
            return True
        if "invalid byte sequence for encoding" in str(seen) and "0x00" in str(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False
