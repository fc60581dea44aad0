"""The composition root of billing-svc: settings in, a running app out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Unpack

from fastapi import FastAPI
from plugpay_events.outbox import Outbox
from plugpay_events.types import utc_now
from plugpay_platform.app import ServiceDefinition, Wiring
from plugpay_platform.background import PeriodicTask

from billing_svc import checkout_endpoints, handlers
from billing_svc.domain import HoldPolicy
from billing_svc.endpoints import router
from billing_svc.processor import PaymentProcessor, SimulatedProcessor
from billing_svc.settings import Settings
from billing_svc.tables import outbox_tables
from billing_svc.usecases import checkout, payment_methods
from billing_svc.usecases.authorise import expire_due_holds
from billing_svc.usecases.common import Billing, BillingPolicy, make_call, wrap_all
from billing_svc.usecases.recover import recover

NAME = "billing-svc"
# What a phone asks to start a new session: shed beyond capacity (plugpay_platform.admission),
# unlike the paths of sessions already running.
PHONE_ROUTES = ("/billing/account", "/billing/topups")
PREFIX = "/billing"
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE = ServiceDefinition(NAME, PREFIX, MIGRATIONS, outbox_tables, shed_paths=PHONE_ROUTES)


def build_processor(settings: Settings) -> PaymentProcessor:
    """The processor the settings select (Stripe, or the simulation outside production)."""
    if settings.processor == "stripe":
        from billing_svc.stripe_processor import StripeProcessor

        assert settings.stripe_api_key is not None
        return StripeProcessor(
            settings.stripe_api_key.get_secret_value(),
            webhook_secret=(
                settings.stripe_webhook_secret.get_secret_value()
                if settings.stripe_webhook_secret
                else ""
            ),
            api_base=settings.stripe_api_base,
        )
    if settings.simulated_webhook_secret is None:
        return SimulatedProcessor()
    return SimulatedProcessor(webhook_secret=settings.simulated_webhook_secret.get_secret_value())


def create_app(
    settings: Settings | None = None,
    *,
    processor: PaymentProcessor | None = None,
    clock: Callable[[], datetime] = utc_now,
    **wiring: Unpack[Wiring],
) -> FastAPI:
    """Build billing-svc: its routes, consumers and runtime, from settings."""
    settings = settings or Settings()
    runtime = SERVICE.runtime(settings, **wiring)
    processor = processor or build_processor(settings)
    billing = Billing(
        processor,
        BillingPolicy(
            holds=HoldPolicy(
                wallet_hold_cap=settings.wallet_hold_cap_minor,
                card_hold_ac=settings.card_hold_ac_minor,
                card_hold_dc=settings.card_hold_dc_minor,
                dc_threshold_w=settings.dc_threshold_w,
            ),
            start_deadline=timedelta(seconds=settings.start_deadline_s),
            wallet_hold_ttl=timedelta(seconds=settings.wallet_hold_ttl_s),
            money_limits=settings.money_limits,
            max_declines=settings.max_declines,
            decline_window=timedelta(seconds=settings.decline_window_s),
        ),
        clock=clock,
    )
    database = runtime.database
    for spec in handlers.consumers(billing, database):
        runtime.consume(spec)

    outbox = Outbox(outbox_tables)

    async def sweep_once() -> int:
        async with database.write() as session:
            events, calls = await expire_due_holds(billing, session)
            await outbox.add(session, wrap_all(events))
        async with database.write() as session:
            expiring = await payment_methods.notice_expiring_cards(billing, session)
            await outbox.add(session, wrap_all(expiring))
        async with database.write() as session:
            calls += await checkout.release_unused(billing, session)
        for call in calls:
            await make_call(billing, database.write, call)
        # Work a crash or a processor time-out left half done (untouched for a while).
        stale = utc_now() - timedelta(seconds=settings.recovery_after_s)
        return len(events) + len(expiring) + await recover(billing, database.write, stale)

    sweeper = PeriodicTask("billing-hold-sweeper", sweep_once, settings.hold_sweep_interval_s)

    async def stop_sweeper() -> None:
        await sweeper.stop()
        await processor.close()

    runtime.on_start.append(sweeper.start)
    runtime.on_stop.append(stop_sweeper)

    app = SERVICE.app(runtime, [router, checkout_endpoints.router])
    app.state.billing = billing
    # Where a guest's bank sends it back after 3-D Secure: its checkout page (never a URL the
    # browser names, so the processor's page cannot be made to redirect elsewhere).
    app.state.checkout_return_url = f"{settings.platform.public_base_url.rstrip('/')}/app/#/guest"
    app.state.sweep_once = sweep_once
    app.state.stripe_publishable_key = settings.stripe_publishable_key
    return app
