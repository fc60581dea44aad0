"""``session-svc rebuild``: drop the session store and replay the topics from offset 0.

The generic part (reading, merging, batching, progress) is ``plugpay_events.replay``; this
module adapts the session store to its ``Projection`` protocol. While it runs it holds the
store's lock exclusively: live consumers wait, scans answer 503, timers do not fire.
"""

from __future__ import annotations

import sys
from typing import Any

from plugpay_events.bus.port import EventBus
from plugpay_events.envelope import Envelope
from plugpay_events.outbox import OutboxTables
from plugpay_events.replay import ReplayProgress, rebuild
from plugpay_platform.database import Database
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from session_svc import repository
from session_svc.handlers import CONSUMER, BatchingProjector, project_batch
from session_svc.settings import Settings


class SessionStoreProjection:
    """The session store as a ``plugpay_events.replay.Projection``."""

    name = CONSUMER

    def __init__(self, database: Database, tables: OutboxTables, settings: Settings) -> None:
        self.database = database
        self.tables = tables
        self.projector = BatchingProjector(
            code_tolerance=settings.code_tolerance,
            clock_skew=settings.clock_skew,
            start_timeout=settings.start_timeout,
        )
        self._pending: list[Envelope] = []
        self._lock: AsyncConnection | None = None
        self._db: AsyncSession | None = None

    @property
    def db(self) -> AsyncSession:
        assert self._db is not None, "reset() first"
        return self._db

    async def reset(self) -> None:
        self._lock = await self.database.engine.connect()
        await repository.lock_store_exclusive(self._lock)
        await self._lock.commit()  # the advisory lock is per connection, not per transaction
        self._db = self.database.sessions()
        await self._db.begin()
        await repository.reset_store(self.db, self.tables, CONSUMER)

    async def apply(self, envelope: Envelope) -> None:
        self._pending.append(envelope)

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        # The inbox is rebuilt too, so live consumers skip what the rebuild already applied.
        await project_batch(self.db, self.tables, self.projector, pending)
        await self.db.commit()
        await self.db.begin()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.rollback()  # nothing pending after a flush; undoes a failed batch
            await self._db.close()
            self._db = None
        if self._lock is not None:
            await repository.unlock_store_exclusive(self._lock)
            await self._lock.commit()
            await self._lock.close()
            self._lock = None


async def rebuild_store(
    bus: EventBus,
    database: Database,
    tables: OutboxTables,
    settings: Settings,
    *,
    batch_size: int = 1000,
    echo: Any = None,
) -> ReplayProgress:
    """Rebuild the session store from the log; ``echo`` receives a progress line now and then."""
    from session_svc.app import STORE_TOPICS

    def report(progress: ReplayProgress) -> None:
        if echo is not None:
            echo(progress.line())

    return await rebuild(
        bus,
        STORE_TOPICS,
        SessionStoreProjection(database, tables, settings),
        batch_size=batch_size,
        on_progress=report,
    )


async def run_rebuild(settings: Settings) -> ReplayProgress:
    """The command: migrate, connect to the bus, rebuild, print progress to stderr."""
    from plugpay_platform.bus import build_event_bus
    from plugpay_platform.migrations import upgrade_to_head

    from session_svc.app import MIGRATIONS, NAME
    from session_svc.tables import outbox_tables

    url = settings.database_url.get_secret_value()
    await upgrade_to_head(MIGRATIONS, url)
    database = Database(url)
    bus = build_event_bus(settings, f"{NAME}-rebuild")
    await bus.start()
    try:
        return await rebuild_store(
            bus, database, outbox_tables, settings, echo=lambda line: print(line, file=sys.stderr)
        )
    finally:
        await bus.stop()
        await database.dispose()
