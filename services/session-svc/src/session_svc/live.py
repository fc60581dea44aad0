"""Live session updates across processes: the projection NOTIFYs, every process LISTENs once
and fans the news out to its open streams (Server-Sent Events) and to typed scans waiting for
the store to learn a just-issued code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from session_svc.repository import CODES_CHANNEL, UPDATES_CHANNEL

log = logging.getLogger(__name__)


class SessionUpdates:
    """One LISTEN connection per process; subscribers get a wake-up per change of a session."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[None]]] = defaultdict(set)
        self._code_waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="session-updates")
        # Streams opened right after start-up must not miss a change.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), 10)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        # Wake every stream so it can end.
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def subscribe(self, session_id: uuid.UUID) -> asyncio.Queue[None]:
        queue: asyncio.Queue[None] = asyncio.Queue()
        self._subscribers[session_id].add(queue)
        return queue

    def unsubscribe(self, session_id: uuid.UUID, queue: asyncio.Queue[None]) -> None:
        queues = self._subscribers.get(session_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[session_id]

    @contextlib.contextmanager
    def code_learned(self, code: str) -> Iterator[asyncio.Event]:
        """An event set when the store has learned this typed code (subscribe before looking,
        so a code learned in between is not missed)."""
        learned = asyncio.Event()
        self._code_waiters[code].add(learned)
        try:
            yield learned
        finally:
            waiters = self._code_waiters.get(code)
            if waiters is not None:
                waiters.discard(learned)
                if not waiters:
                    del self._code_waiters[code]

    def _on_code(self, *args: Any) -> None:
        payload = args[3] if len(args) > 3 else ""
        for learned in self._code_waiters.get(payload, ()):
            learned.set()

    def _on_notify(self, *args: Any) -> None:
        payload = args[3] if len(args) > 3 else ""
        try:
            session_id = uuid.UUID(payload)
        except ValueError:
            return
        for queue in self._subscribers.get(session_id, ()):
            queue.put_nowait(None)

    def _wake_all(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                async with self.engine.connect() as conn:
                    raw: Any = (await conn.get_raw_connection()).driver_connection
                    await raw.add_listener(UPDATES_CHANNEL, self._on_notify)
                    await raw.add_listener(CODES_CHANNEL, self._on_code)
                    self.listening.set()
                    # Changes may have happened while not listening: streams re-read.
                    self._wake_all()
                    for waiters in self._code_waiters.values():
                        for learned in waiters:
                            learned.set()
                    while not self._stopping.is_set():
                        await asyncio.sleep(5)
                        await raw.execute("SELECT 1")  # notice a dead connection
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("listening for session updates failed; retrying")
                self.listening.clear()
                await asyncio.sleep(1.0)
