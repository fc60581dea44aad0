"""One ASGI app in front of several: requests go to the service owning the path prefix.

Each service keeps its own FastAPI app, state and lifespan, exactly as when it runs alone
behind the gateway, so the embedded process exercises the same code paths as production.
"""

from __future__ import annotations

import contextlib
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
    """Route by the longest matching path prefix; run every sub-app's lifespan."""

    def __init__(self, routes: Sequence[tuple[str, Any]], fallback: ASGIApp | None = None) -> None:
        # Longest prefix first, so "/stations" does not shadow "/stations-x".
        self.routes = sorted(routes, key=lambda r: len(r[0]), reverse=True)
        self.fallback = fallback
        self.apps = list(dict.fromkeys(app for _, app in routes))

    def app_for(self, path: str) -> Any | None:
        for prefix, app in self.routes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return app
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self.app_for(scope.get("path", "/")) or self.fallback
        if app is None:
            await _not_found(scope, send)
            return
        await app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        stack = contextlib.AsyncExitStack()
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            for app in self.apps:
                router = getattr(app, "router", None)
                if router is not None:
                    await stack.enter_async_context(router.lifespan_context(app))
        except Exception as error:
            log.exception("start-up failed")
            await stack.aclose()
            await send({"type": "lifespan.startup.failed", "message": str(error)})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        try:
            await stack.aclose()
        except Exception as error:
            log.exception("shutdown failed")
            await send({"type": "lifespan.shutdown.failed", "message": str(error)})
            return
        await send({"type": "lifespan.shutdown.complete"})


async def _not_found(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4404})
        return
    body = b'{"reason":"not_found","message":"no such path"}'
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
