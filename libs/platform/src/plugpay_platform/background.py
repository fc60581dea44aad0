"""Background work a service runs beside its API: periodic steps, and LISTEN/NOTIFY listeners
that survive a dropped connection. Both start and stop with the service (``ServiceRuntime``'s
``on_start``/``on_stop``)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)


class PeriodicTask:
    """Runs ``step`` every ``interval_s`` seconds from ``start()`` to ``stop()``.

    A step that raises is logged and tried again after the interval. With ``busy_again``, a
    step whose result is truthy (say, how many due rows it handled) had more work waiting, and
    the next step runs at once. ``stop()`` lets a step in flight finish for up to ``grace_s``
    seconds (a round half done may cost a duplicate), then cancels it.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        busy_again: bool = False,
        grace_s: float = 0.0,
    ) -> None:
        self.name = name
        self.step = step
        self.interval_s = interval_s
        self.busy_again = busy_again
        self.grace_s = grace_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        if self.grace_s > 0:
            done, _ = await asyncio.wait({task}, timeout=self.grace_s)
            if not done:
                log.warning(
                    "%s did not finish its round in %ss; cancelled", self.name, self.grace_s
                )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                busy = bool(await self.step()) and self.busy_again
            except Exception:
                log.exception("%s failed; retrying", self.name)
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval_s)


class PgListener:
    """LISTEN on PostgreSQL channels over one connection of ``engine``, for as long as it runs.

    ``channels`` maps each channel to a callback taking the notification's payload. A dropped
    connection is noticed within ``check_interval_s`` and replaced after ``retry_s``; since
    notifications sent meanwhile are lost, ``on_listening`` runs after every (re)connect, so the
    owner can catch up (re-read what it watches). ``listening`` is set while connected.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        channels: Mapping[str, Callable[[str], None]],
        *,
        name: str,
        on_listening: Callable[[], object] | None = None,
        check_interval_s: float = 5.0,
        retry_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.channels = dict(channels)
        self.name = name
        self.on_listening = on_listening
        self.check_interval_s = check_interval_s
        self.retry_s = retry_s
        self.listening = asyncio.Event()
        self.connects = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self, wait_s: float = 10.0) -> None:
        """Start listening; waits (up to ``wait_s``) until the first LISTEN is in place, so
        what happens right after start-up is not missed."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), wait_s)

    async def stop(self) -> None:
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.listening.clear()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                async with self.engine.connect() as conn:
                    try:
                        await self._listen(conn)
                    except Exception:
                        # A dead connection must not go back to the pool to be handed out again.
                        with contextlib.suppress(Exception):
                            await conn.invalidate()
                        raise
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s lost its connection; reconnecting", self.name)
                self.listening.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.retry_s)

    async def _listen(self, conn: AsyncConnection) -> None:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        for channel, callback in self.channels.items():
            await raw.add_listener(channel, _payload_to(callback))
        self.connects += 1
        self.listening.set()
        if self.on_listening is not None:
            outcome = self.on_listening()
            if inspect.isawaitable(outcome):
                await outcome
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.check_interval_s)
            await raw.execute("SELECT 1")  # notice a dead connection


def _payload_to(callback: Callable[[str], None]) -> Callable[..., None]:
    # asyncpg calls (connection, pid, channel, payload).
    def on_notify(*args: Any) -> None:
        callback(str(args[3]) if len(args) > 3 else "")

    return on_notify
