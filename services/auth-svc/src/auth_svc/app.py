"""The composition root of auth-svc: settings in, a running app out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Unpack

from fastapi import FastAPI
from plugpay_platform.app import ServiceDefinition, Wiring
from plugpay_platform.runtime import ServiceRuntime
from plugpay_platform.security import StaticJwks

from auth_svc import service
from auth_svc.endpoints import router
from auth_svc.repository import AuthRepository
from auth_svc.service import AuthContext
from auth_svc.settings import Settings
from auth_svc.tables import outbox_tables

NAME = "auth-svc"
PREFIX = "/auth"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = ServiceDefinition(NAME, PREFIX, MIGRATIONS, outbox_tables)
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, **wiring: Unpack[Wiring]) -> FastAPI:
    """Build auth-svc: its routes, consumers and runtime, from settings.

    auth-svc verifies tokens against its own signing keys read from its database (it cannot
    fetch its own JWKS over HTTP while starting, nor at all under an in-process transport).
    Mail (verification, reset, invitations) leaves as events for notification-svc.
    """
    settings = settings or Settings()
    settings.platform.link_key()  # production without PLUGPAY_MAIL_LINK_KEY fails here
    ctx = AuthContext(settings)
    holder: dict[str, ServiceRuntime] = {}

    async def own_jwks() -> dict[str, Any]:
        async with holder["runtime"].database.read() as session:
            return await service.jwks(ctx, session)

    runtime = SERVICE.runtime(
        settings,
        bus_factory=wiring.get("bus_factory"),
        key_source=wiring.get("key_source") or StaticJwks(own_jwks),
    )
    holder["runtime"] = runtime

    async def prepare() -> None:
        async with runtime.database.write() as session:
            await service.ensure_signing_key(ctx, session)
        if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
            await bootstrap_admin(ctx, runtime, settings)
        if settings.seed_demo:
            from auth_svc.seed import seed_demo

            async with runtime.database.write() as session:
                await seed_demo(session, ctx=ctx)

    runtime.on_start.append(prepare)
    app = SERVICE.app(runtime, [router])
    app.state.auth = ctx
    # For the all-in-one process: other services may verify with this instead of HTTP.
    app.state.key_source = runtime.token_verifier.keys
    return app


async def bootstrap_admin(ctx: AuthContext, runtime: ServiceRuntime, settings: Settings) -> None:
    """Create the first admin from settings unless that account exists (idempotent)."""
    assert settings.bootstrap_admin_email and settings.bootstrap_admin_password
    async with runtime.database.write() as session:
        email = settings.bootstrap_admin_email.strip().lower()
        if await AuthRepository(session).user_by_email(email) is not None:
            return
        await service.create_staff_account(
            ctx,
            session,
            email=email,
            password=settings.bootstrap_admin_password.get_secret_value(),
            role="admin",
            organisation_id=None,
        )
    log.info("bootstrap admin %s created", email)
