"""The web front-ends in the all-in-one process: the driver app (/app), the operator portal
(/ops) and the QR landing (/s/{token}).

They are static files (HTML, ES modules, CSS) in the repository's ``web/`` folder; their
libraries come from ``web/node_modules`` (installed by ``npm ci`` in ``make sync``), served
under ``/app/vendor/`` and ``/ops/vendor/``. In the distributed stack nginx serves the same
folder with the same paths (web/README.md), so nothing here is needed in production.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from plugpay_platform.http_security import NoSniffMiddleware, page_headers
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

# Only these library files are served, each under a short name (never all of node_modules).
VENDOR = {
    "jsqr": ("jsqr", "dist"),
}
# The token of a session code is a compact JWS: base64url parts separated by dots.
TOKEN = re.compile(r"^[A-Za-z0-9_.-]{1,4096}$")
# The same page headers as every service's pages (libs/platform), and nginx's for web/.
SECURITY_HEADERS = [(k.lower().encode(), v.encode()) for k, v in page_headers().items()]


def web_root() -> Path:
    """``PLUGPAY_WEB_ROOT``, else the repository's ``web/`` (this file lives in apps/plugpay)."""
    configured = os.environ.get("PLUGPAY_WEB_ROOT")
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parents[4] / "web"


class _Files(StaticFiles):
    """Static files that are revalidated on every load (the service worker does the caching)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers.append((b"cache-control", b"no-cache"))
                headers.extend(SECURITY_HEADERS)
                if scope["path"].endswith("/sw.js"):
                    headers.append((b"service-worker-allowed", b"/app/"))
                message["headers"] = headers
            await send(message)

        await super().__call__(scope, receive, send_with_headers)  # type: ignore[arg-type]


def create_app(root: Path | None = None) -> Starlette:
    """The static front-ends as one ASGI app (paths are the public ones: /app, /ops, /s)."""
    root = root or web_root()
    modules = root / "node_modules"

    async def landing(request: Request) -> Response:
        token = request.path_params["token"]
        if not TOKEN.match(token):
            return JSONResponse({"reason": "code_malformed", "message": "not a Plugpay code"}, 404)
        # The token travels in the fragment: it never reaches a server log from here on.
        return RedirectResponse(f"/app/#/s/{token}", status_code=302)

    def slash(target: str) -> Route:
        async def redirect(_: Request) -> Response:
            return RedirectResponse(target, status_code=301)

        return Route(target.rstrip("/"), redirect)

    routes: list[Route | Mount] = [
        Route("/s/{token:path}", landing),
        slash("/app/"),
        slash("/ops/"),
    ]
    for front in ("app", "ops"):
        for name, (package, folder) in VENDOR.items():
            routes.append(
                Mount(
                    f"/{front}/vendor/{name}",
                    app=_Files(directory=modules / package / folder, check_dir=False),
                )
            )
        routes.append(
            Mount(f"/{front}/shared", app=_Files(directory=root / "shared", check_dir=False))
        )
        routes.append(
            Mount(f"/{front}", app=_Files(directory=root / front, html=True, check_dir=False))
        )
    return Starlette(routes=routes, middleware=[Middleware(NoSniffMiddleware)])
