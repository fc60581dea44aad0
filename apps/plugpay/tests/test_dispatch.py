"""The one-process front door: path prefixes reach the service that owns them, and every
service's lifespan runs (and stops) with the process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from plugpay_app.dispatch import PrefixDispatcher


def service(name: str, events: list[str]) -> FastAPI:
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
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=dispatcher), base_url="http://t")
    answers: dict[str, httpx.Response] = {}

    async def while_running() -> None:
        await dispatcher.wait_started()
        for path in ("/stations/ST-1/display", "/stations", "/stations-x/1", "/stationsy"):
            answers[path] = await client.get(path)

    await lifespan_messages(dispatcher, while_running)
    assert answers["/stations/ST-1/display"].json()["service"] == "gateway"
    assert answers["/stations"].json()["service"] == "gateway"
    assert answers["/stations-x/1"].json()["service"] == "other"
    assert answers["/stationsy"].status_code == 404
    assert answers["/stationsy"].json()["reason"] == "not_found"


async def lifespan_messages(
    dispatcher: PrefixDispatcher, between: Callable[[], Awaitable[None]]
) -> list[str]:
    """Drive the dispatcher's lifespan: start, ``between``, shut down; the messages it sent."""
    sent: list[str] = []
    shutdown = asyncio.Event()
    inbox = ["lifespan.startup", "lifespan.shutdown"]

    async def receive() -> dict[str, object]:
        kind = inbox.pop(0)
        if kind == "lifespan.shutdown":
            await shutdown.wait()
        return {"type": kind}

    async def send(message: dict[str, object]) -> None:
        sent.append(str(message["type"]))
        if message["type"] == "lifespan.startup.complete":
            await between()
            shutdown.set()

    await dispatcher({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    return sent


async def test_front_door_opens_at_once_and_services_answer_once_started() -> None:
    events: list[str] = []
    first, second = service("auth", events), service("sessions", events)
    dispatcher = PrefixDispatcher([("/auth", first), ("/sessions", second), ("/more", second)])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=dispatcher), base_url="http://t")

    async def while_running() -> None:
        await dispatcher.wait_started()
        assert (await client.get("/more/x")).json()["service"] == "sessions"

    sent = await lifespan_messages(dispatcher, while_running)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    # An app mounted under two prefixes starts (and stops) once.
    assert sorted(events) == ["start auth", "start sessions", "stop auth", "stop sessions"]
    starting = await client.get("/auth/x")  # after shutdown: not serving any more
    assert starting.status_code == 503
    assert starting.headers["retry-after"] == "1"
    assert starting.json()["reason"] == "starting"


async def test_a_service_that_fails_to_start_answers_503_and_the_others_run() -> None:
    events: list[str] = []
    good = service("auth", events)
    broken = FastAPI()

    @asynccontextmanager
    async def explode(app: FastAPI):  # type: ignore[no-untyped-def]
        raise RuntimeError("database unreachable")
        yield

    broken.router.lifespan_context = explode
    dispatcher = PrefixDispatcher([("/auth", good), ("/broken", broken)])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=dispatcher), base_url="http://t")
    answers: list[httpx.Response] = []

    async def while_running() -> None:
        await dispatcher.wait_started()
        answers.extend([await client.get("/auth/x"), await client.get("/broken/x")])

    await lifespan_messages(dispatcher, while_running)
    assert answers[0].json()["service"] == "auth"
    assert answers[1].status_code == 503
    assert answers[1].json()["reason"] == "start_failed"
    assert "database unreachable" in next(iter(dispatcher.failed.values()))
    assert events == ["start auth", "stop auth"]


async def test_websockets_the_front_door_cannot_serve_are_closed_with_their_reason() -> None:
    events: list[str] = []
    dispatcher = PrefixDispatcher([("/ocpp", service("gateway", events))], internal_paths=["/x"])
    closes: dict[str, int] = {}

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    for path in ("/ocpp/ST-1", "/x", "/nope"):  # not started yet, internal, unknown

        async def send(message: dict[str, object], path: str = path) -> None:
            assert message["type"] == "websocket.close"
            closes[path] = int(message["code"])  # type: ignore[call-overload]

        await dispatcher({"type": "websocket", "path": path}, receive, send)  # type: ignore[arg-type]
    assert closes == {"/ocpp/ST-1": 1013, "/x": 1008, "/nope": 4404}
