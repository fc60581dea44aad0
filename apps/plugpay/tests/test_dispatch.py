"""The one-process front door: path prefixes reach the service that owns them, and every
service's lifespan runs (and stops) with the process."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from plugpay_app.dispatch import PrefixDispatcher


def service(name: str, events: list[str]) -> FastAPI:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        events.append(f"start {name}")
        yield
        events.append(f"stop {name}")

    app = FastAPI(lifespan=lifespan)

    @app.get("/{path:path}")
    async def echo(path: str) -> dict[str, str]:
        return {"service": name, "path": path}

    return app


async def test_longest_prefix_wins_and_unknown_paths_are_404() -> None:
    events: list[str] = []
    stations, stations_x = service("gateway", events), service("other", events)
    dispatcher = PrefixDispatcher([("/stations", stations), ("/stations-x", stations_x)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=dispatcher), base_url="http://t"
    ) as client:
        assert (await client.get("/stations/ST-1/display")).json()["service"] == "gateway"
        assert (await client.get("/stations")).json()["service"] == "gateway"
        assert (await client.get("/stations-x/1")).json()["service"] == "other"
        missing = await client.get("/stationsy")
        assert missing.status_code == 404
        assert missing.json()["reason"] == "not_found"


async def test_lifespans_start_in_order_and_stop_in_reverse() -> None:
    events: list[str] = []
    first, second = service("auth", events), service("sessions", events)
    dispatcher = PrefixDispatcher([("/auth", first), ("/sessions", second), ("/more", second)])
    sent: list[dict[str, object]] = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, object]:
        return inbox.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await dispatcher({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    # An app mounted under two prefixes starts once.
    assert events == ["start auth", "start sessions", "stop sessions", "stop auth"]


async def test_failed_start_stops_what_already_started() -> None:
    events: list[str] = []
    good = service("auth", events)
    broken = FastAPI()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def explode(app: FastAPI):  # type: ignore[no-untyped-def]
        raise RuntimeError("database unreachable")
        yield

    broken.router.lifespan_context = explode
    dispatcher = PrefixDispatcher([("/auth", good), ("/broken", broken)])
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await dispatcher({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    assert sent[-1]["type"] == "lifespan.startup.failed"
    assert "database unreachable" in str(sent[-1]["message"])
    assert events == ["start auth", "stop auth"]
