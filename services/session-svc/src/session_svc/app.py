"""The composition root of session-svc: settings in, a running app out."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from fastapi import FastAPI
from plugpay_events.topics import IDENTITY, METER, SESSIONS, STATIONS
from plugpay_platform.app import ServiceDefinition, Wiring
from plugpay_platform.background import PeriodicTask
from plugpay_platform.runtime import ConsumerSpec

from session_svc import service
from session_svc.endpoints import router
from session_svc.handlers import CONSUMER, live_batch_handler, live_handler, timer_rules
from session_svc.live import SessionUpdates
from session_svc.service import Sessions
from session_svc.settings import Settings
from session_svc.tables import outbox_tables

NAME = "session-svc"
# What a phone asks to start a new session: shed beyond capacity (plugpay_platform.admission),
# unlike the paths of sessions already running.
PHONE_ROUTES = ("/sessions/scan", "/sessions/codes/lookup")
PREFIX = "/sessions"
MIGRATIONS = Path(__file__).parent / "migrations"
STORE_TOPICS = (SESSIONS, METER, STATIONS, IDENTITY)
SERVICE = ServiceDefinition(NAME, PREFIX, MIGRATIONS, outbox_tables, shed_paths=PHONE_ROUTES)


def create_app(settings: Settings | None = None, **wiring: Unpack[Wiring]) -> FastAPI:
    """Build session-svc: its routes, consumers and runtime, from settings."""
    settings = settings or Settings()
    runtime = SERVICE.runtime(settings, **wiring)
    runtime.consume(
        ConsumerSpec(
            group=CONSUMER,
            topics=STORE_TOPICS,
            handler=live_handler(runtime.database.sessions, outbox_tables, timer_rules(settings)),
            batch_handler=live_batch_handler(
                runtime.database.sessions, outbox_tables, timer_rules(settings)
            ),
        )
    )
    sessions = Sessions(settings)
    database = runtime.database

    async def fire_due_timers() -> int:
        async with database.write() as db:
            return await service.fire_due_timers(db, sessions)

    updates = SessionUpdates(database.engine)
    # The timers are rows, so they survive restarts; more may be due after a full round.
    timers = PeriodicTask(
        "session-timers", fire_due_timers, settings.timer_interval_s, busy_again=True
    )
    runtime.on_start += [updates.start, timers.start]
    runtime.on_stop += [updates.stop, timers.stop]
    app = SERVICE.app(runtime, [router])
    app.state.sessions = sessions
    app.state.fire_due_timers = fire_due_timers

    async def scans_backlogged() -> bool:
        async with database.read() as db:
            return await service.scans_backlogged(db, sessions)

    async def watch_scan_backlog() -> None:
        await app.state.admission.watch_backlog(scans_backlogged, settings.scan_backlog_interval_s)

    runtime.on_start.append(watch_scan_backlog)
    app.state.session_updates = updates
    return app
