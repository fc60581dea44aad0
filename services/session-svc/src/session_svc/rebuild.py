"""``session-svc rebuild``: drop the session store and replay the topics from offset 0.

The generic part (reading, decoding, merging, batching, progress) is ``plugpay_events.replay``;
this module adapts the session store to its ``BulkProjection`` protocol. While it runs it holds the
store's lock exclusively: live consumers wait, scans answer 503, timers do not fire.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from plugpay_events.bus.port import EventBus
from plugpay_events.outbox import OutboxTables
from plugpay_events.replay import ReplayedEvent, ReplayProgress, rebuild
from plugpay_platform.database import Database
from sqlalchemy.ext.asyncio import AsyncConnection

from session_svc import repository
from session_svc.handlers import CONSUMER, StoreFold, timer_rules
from session_svc.settings import Settings

# Events per flush (one transaction): each session's row is written about once per flush it
# has events in, so the bigger the batch the fewer rows are written twice.
BATCH_SIZE = 100_000


class SessionStoreProjection:
    """The session store as a ``plugpay_events.replay.BulkProjection``: the whole log folded in
    memory (``StoreFold``), the changed rows written in bulk (COPY) once per batch."""

    name = CONSUMER

    def __init__(self, database: Database, tables: OutboxTables, settings: Settings) -> None:
        self.database = database
        self.tables = tables
        self.fold = StoreFold(timer_rules(settings))
        self._lock: AsyncConnection | None = None
        self._db: AsyncConnection | None = None

    @property
    def db(self) -> AsyncConnection:
        assert self._db is not None, "reset() first"
        return self._db

    async def reset(self) -> None:
        self._lock = await self.database.engine.connect()
        await repository.lock_store_exclusive(self._lock)
        await self._lock.commit()  # the advisory lock is per connection, not per transaction
        self._db = await self.database.engine.connect()
        await self._db.begin()
        await repository.reset_store(self.db, self.tables, CONSUMER)

    async def apply_events(self, events: Sequence[ReplayedEvent]) -> None:
        apply = self.fold.apply
        for index, e in enumerate(events, start=1):
            apply(e.event_id, e.aggregate_id, e.event)
            if index % 2000 == 0:
                # Let the previous batch's COPY go on meanwhile (PostgreSQL has a core too).
                await asyncio.sleep(0)

    async def flush(self) -> None:
        changes = self.fold.take()  # before any await: the next batch is applied meanwhile
        # The inbox is rebuilt too, so live consumers skip what the rebuild already applied.
        await repository.copy_inbox(self.db, self.tables, CONSUMER, changes.event_ids)
        await repository.replace_store_rows(
            self.db,
            states=changes.sessions,
            rewritten=changes.rewritten,
            timers_due=changes.timers,
            meter=changes.meter,
            meter_rewritten=changes.meter_rewritten,
        )
        await repository.record_stations(self.db, changes.presence, changes.registrations)
        await repository.record_scan_claims(self.db, changes.scan_claims)
        # Open streams re-read once per batch, not once per event.
        await repository.notify_sessions_changed(self.db, changes.touched)
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
    batch_size: int = BATCH_SIZE,
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
        read_concurrently=True,  # its buses (Kafka, the embedded log's pool) allow it
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
