"""Security headers and the API docs, the same for every service and front door.

- Every HTTP response says ``X-Content-Type-Options: nosniff`` (JSON included): a browser never
  guesses a script or a page out of an API answer.
- Pages (the web app, the station display, the API docs) get ``page_headers``: a Content
  Security Policy that allows only this origin and no framing, no referrer, a permissions policy.
- The API docs (Swagger UI) are served from the ``swagger-ui-py`` package, version pinned by
  ``uv.lock``: no CDN, no floating version, and they work offline. The page runs no inline
  script, so it lives under the same policy as the app (plus inline styles, which Swagger UI
  sets on its elements).
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plugpay_platform.errors import Refusal

# Scripts, frames and calls are Plugpay's own, and Stripe's where a card is entered: with Stripe
# configured the card is typed into Stripe.js's Card Element (its iframe, its API), never into a
# Plugpay page (https://docs.stripe.com/security/guide#content-security-policy).
STRIPE_JS = "https://js.stripe.com"
APP_CSP = (
    f"default-src 'self'; script-src 'self' {STRIPE_JS}; "
    f"frame-src {STRIPE_JS} https://hooks.stripe.com; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' https://api.stripe.com; worker-src 'self'; "
    "manifest-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)
APP_PERMISSIONS = "camera=(self), geolocation=(self), microphone=()"
NO_PERMISSIONS = "camera=(), geolocation=(), microphone=()"
# Pages that set inline styles (Swagger UI, the front page), still without inline scripts.
INLINE_STYLE_CSP = APP_CSP + "; style-src 'self' 'unsafe-inline'"

# Only these files of the package are served (its folder also holds Swagger Editor).
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_DOCS_INIT = """\
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
"""


def page_headers(csp: str = APP_CSP, permissions: str = APP_PERMISSIONS) -> dict[str, str]:
    """The headers of an HTML page: its Content Security Policy and the rest."""
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": permissions,
    }


class NoSniffMiddleware:
    """``X-Content-Type-Options: nosniff`` on every HTTP response (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("x-content-type-options", "nosniff")
            await send(message)

        await self.app(scope, receive, send_with_header)


def swagger_ui_folder() -> Path:
    """Where the pinned Swagger UI package keeps its files."""
    return Path(str(resources.files("swagger_ui"))) / "static"


def install_api_docs(app: FastAPI, *, prefix: str, title: str) -> None:
    """Serve Swagger UI for ``app.openapi_url`` at ``{prefix}/docs`` from the package."""
    assets = f"{prefix}/docs/assets"
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{html.escape(app.openapi_url or "")}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/docs.js"></script>
</body>
</html>
"""
    folder = swagger_ui_folder()

    async def docs() -> HTMLResponse:
        return HTMLResponse(
            page, headers={**page_headers(INLINE_STYLE_CSP), "Cache-Control": "no-cache"}
        )

    async def asset(name: str) -> Response:
        if name == "docs.js":
            return Response(
                _DOCS_INIT, media_type="text/javascript", headers={"Cache-Control": "no-cache"}
            )
        media_type = DOCS_ASSETS.get(name)
        if media_type is None:
            raise Refusal("not_found", "no such file", status_code=404)
        return FileResponse(
            folder / name, media_type=media_type, headers={"Cache-Control": "public, max-age=3600"}
        )

    app.add_api_route(f"{prefix}/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{assets}/{{name}}", asset, methods=["GET"], include_in_schema=False)
