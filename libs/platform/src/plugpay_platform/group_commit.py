"""Group commit: many callers' small writes in one transaction, none of them waiting on a timer.

Each caller awaits ``submit(item)``. The first starts a flush; whatever arrives while a batch is
being written goes into the next one. Alone, an item is written at once; under a burst (a
reconnect storm, thousands of status reports) hundreds share one transaction, one pool
connection and one commit instead of queueing for the pool one by one. A failed batch fails
every caller in it, as their own transaction would have; a caller that stops waiting does not
stop its item being written. Batches are written outside every caller's context (its trace,
its log fields): one caller's trace parent must not be stamped on the others' events.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """``write`` takes a batch of items (in arrival order) and returns one result per item."""

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int = 500,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self.max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # written so far (what a benchmark or a test reads)

    async def submit(self, item: Item) -> Result:
        """Write ``item`` with whatever else is waiting; its result once the batch committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), context=contextvars.Context())
        return await future

    async def idle(self) -> None:
        """Wait until everything submitted so far is written (or failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher})

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                results = await self._write([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
            except asyncio.CancelledError:
                for _, future in (*batch, *self._pending):
                    future.cancel()
                self._pending.clear()
                raise
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            finally:
                self.batches += 1
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
