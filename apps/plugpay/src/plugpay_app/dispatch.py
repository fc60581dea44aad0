"""One ASGI app in front of several: requests go to the service owning the path prefix.

Each service keeps its own FastAPI app, state and lifespan, exactly as when it runs alone
behind the gateway, so the embedded process exercises the same code paths as production.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class PrefixDispatcher:
    """Route by the longest matching path prefix; run every sub-app's lifespan.

    The front door opens at once: the sub-apps start concurrently in the background and a
    request for one still starting gets 503 with Retry-After (a WebSocket is closed with 1013,
    "try again later"), so the first page answers within a second of the process starting.

    ``internal_paths`` (the services' metrics) are refused with 403, as the distributed
    gateway refuses them (deploy/gateway/routes.yaml): one rule for both front doors.
    """

    def __init__(
        self,
        routes: Sequence[tuple[str, Any]],
        fallback: ASGIApp | None = None,
        internal_paths: Sequence[str] = (),
    ) -> None:
        # Longest prefix first, so "/stations" does not shadow "/stations-x".
        self.routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        self.fallback = fallback
        self.apps = list(dict.fromkeys(app for _, app in routes))
        self.internal_paths = frozenset(internal_paths)
        self.started: set[int] = set()
        self.failed: dict[int, str] = {}
        self._all_started = asyncio.Event()
        self._stop = asyncio.Event()
        self._runners: list[asyncio.Task[None]] = []

    def app_for(self, path: str) -> Any | None:
        for prefix, app in self.routes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return app
        return None

    async def wait_started(self) -> None:
        """Until every sub-app has started (or failed to)."""
        await self._all_started.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "/")
        if path.rstrip("/") in self.internal_paths:
            await _internal(scope, send)
            return
        app = self.app_for(path)
        if app is None:
            if self.fallback is None:
                await _not_found(scope, send)
            else:
                await self.fallback(scope, receive, send)
            return
        if id(app) not in self.started:
            await _unavailable(scope, send, self.failed.get(id(app)))
            return
        await app(scope, receive, send)

    async def _run(self, app: Any) -> None:
        router = getattr(app, "router", None)
        try:
            if router is None:
                self.started.add(id(app))
                return
            async with router.lifespan_context(app):
                self.started.add(id(app))
                self._check_all_started()
                await self._stop.wait()
        except Exception as error:
            log.exception("a service failed to start or stop")
            self.failed[id(app)] = f"{type(error).__name__}: {error}"
        finally:
            self.started.discard(id(app))
            self._check_all_started()

    def _check_all_started(self) -> None:
        if all(id(a) in self.started or id(a) in self.failed for a in self.apps):
            self._all_started.set()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        self._runners = [asyncio.create_task(self._run(app)) for app in self.apps]
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        self._stop.set()
        await asyncio.gather(*self._runners, return_exceptions=True)
        await send({"type": "lifespan.shutdown.complete"})


async def _answer(
    scope: Scope,
    send: Send,
    *,
    close_code: int,
    status: int,
    reason: str,
    message: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer without the app: a WebSocket is closed with ``close_code``, an HTTP request gets
    the usual refusal body ``{"reason", "message"}`` with ``status``."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": close_code})
        return
    body = json.dumps({"reason": reason, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _unavailable(scope: Scope, send: Send, failure: str | None) -> None:
    await _answer(
        scope,
        send,
        close_code=1013,
        status=503,
        reason="start_failed" if failure else "starting",
        message="this service failed to start" if failure else "starting up, try again in a moment",
        headers=((b"retry-after", b"1"),),
    )


async def _internal(scope: Scope, send: Send) -> None:
    await _answer(
        scope,
        send,
        close_code=1008,
        status=403,
        reason="internal_path",
        message="metrics are scraped from the service itself",
    )


async def _not_found(scope: Scope, send: Send) -> None:
    await _answer(
        scope, send, close_code=4404, status=404, reason="not_found", message="no such path"
    )
