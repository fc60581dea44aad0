"""Liveness and readiness: ready only when the service's own dependencies answer."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", include_in_schema=False)
async def live() -> dict[str, str]:
    """The process runs its event loop."""
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def ready(request: Request) -> JSONResponse:
    """The database answers and the outbox relay is running."""
    runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(runtime.database.ping(), 2.0)
        checks["database"] = "ok"
    except Exception as error:  # any failure means not ready; say which
        checks["database"] = f"failed: {type(error).__name__}"
    checks["outbox_relay"] = (
        "ok" if runtime.relay._task and not runtime.relay._task.done() else "stopped"
    )
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
    )
