"""The composition root of session-svc: settings in, a running app out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from plugpay_events.bus.port import EventBus
from plugpay_events.topics import IDENTITY, METER, SESSIONS, STATIONS
from plugpay_platform.app import build_service_app
from plugpay_platform.runtime import ConsumerSpec, ServiceRuntime
from plugpay_platform.security import KeySource

from session_svc.endpoints import router
from session_svc.handlers import CONSUMER, live_batch_handler, live_handler, timer_rules
from session_svc.live import SessionUpdates
from session_svc.service import SessionService
from session_svc.settings import Settings
from session_svc.tables import outbox_tables

NAME = "session-svc"
PREFIX = "/sessions"
MIGRATIONS = Path(__file__).parent / "migrations"
STORE_TOPICS = (SESSIONS, METER, STATIONS, IDENTITY)

log = logging.getLogger(__name__)


class TimerWorker:
    """Fires due timers in the background; the timers themselves are rows, so they survive."""

    def __init__(self, service: SessionService, interval_s: float) -> None:
        self.service = service
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="session-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                if await self.service.fire_due_timers() > 0:
                    continue  # more may be due
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("firing timers failed; retrying")
            await asyncio.sleep(self.interval_s)


def create_app(
    settings: Settings | None = None,
    *,
    bus_factory: Callable[[], EventBus] | None = None,
    key_source: KeySource | None = None,
) -> FastAPI:
    """Build session-svc: its routes, consumers and runtime, from settings."""
    settings = settings or Settings()
    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        migrations=MIGRATIONS,
        outbox_tables=outbox_tables,
        bus_factory=bus_factory,
        key_source=key_source,
    )
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
    updates = SessionUpdates(runtime.database.engine)
    service = SessionService(
        settings, runtime.database, outbox_tables, code_learned=updates.code_learned
    )
    timers = TimerWorker(service, settings.timer_interval_s)
    runtime.on_start += [updates.start, timers.start]
    runtime.on_stop += [updates.stop, timers.stop]
    app = build_service_app(runtime, [router], title="Plugpay session-svc", prefix=PREFIX)
    app.state.session_service = service
    app.state.session_updates = updates
    return app
