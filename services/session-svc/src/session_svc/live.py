"""Live session updates across processes: the projection NOTIFYs, every process LISTENs once
and fans the news out to its open streams (Server-Sent Events) and to typed scans waiting for
the store to learn a just-issued code."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Iterator

from plugpay_platform.background import PgListener
from sqlalchemy.ext.asyncio import AsyncEngine

from session_svc.repository import CODES_CHANNEL, UPDATES_CHANNEL


class SessionUpdates:
    """One LISTEN connection per process; subscribers get a wake-up per change of a session."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[None]]] = defaultdict(set)
        self._code_waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._stopping = asyncio.Event()
        # Changes may have happened while not listening: streams and waiters look again after
        # a reconnect.
        self.listener = PgListener(
            engine,
            {UPDATES_CHANNEL: self._on_notify, CODES_CHANNEL: self._on_code},
            name="session-updates",
            on_listening=self._wake_all,
        )

    async def start(self) -> None:
        self._stopping.clear()
        await self.listener.start()

    async def stop(self) -> None:
        self._stopping.set()
        await self.listener.stop()
        # Wake every stream so it can end.
        self._wake_all()

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

    def _on_code(self, payload: str) -> None:
        for learned in self._code_waiters.get(payload, ()):
            learned.set()

    def _on_notify(self, payload: str) -> None:
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
        for waiters in self._code_waiters.values():
            for learned in waiters:
                learned.set()
