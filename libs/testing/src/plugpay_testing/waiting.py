"""Waiting in tests for something observable to become true, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard, TypeVar, overload

T = TypeVar("T")


class NotYet(AssertionError):
    """What ``eventually`` raises when the condition did not hold in time."""


class _Attempts:
    """The bookkeeping ``eventually`` and ``eventually_blocking`` share: the deadline and the
    last value seen, for the failure message."""

    def __init__(self, probe: object, within: float, what: str | None) -> None:
        self.probe, self.within, self.what = probe, within, what
        self.deadline = time.monotonic() + within
        self.last: object = None

    def holds(self, result: T | None) -> TypeGuard[T]:
        """Whether this attempt's ``result`` is the answer; ``NotYet`` once time is up."""
        self.last = result
        return bool(result) or self._not_yet()

    def tolerated(self, error: BaseException) -> None:
        """An attempt failed in a way that means "not yet"."""
        self.last = error
        self._not_yet()

    def _not_yet(self) -> bool:
        """False (try again), or ``NotYet`` once time is up."""
        if time.monotonic() > self.deadline:
            raise NotYet(
                f"not within {self.within:g}s: {self.what or self.probe}; last: {self.last!r}"
            )
        return False


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    within: float = ...,
    what: str | None = ...,
    *,
    every: float = ...,
    tolerate: tuple[type[BaseException], ...] = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None],
    within: float = ...,
    what: str | None = ...,
    *,
    every: float = ...,
    tolerate: tuple[type[BaseException], ...] = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    within: float = 20.0,
    what: str | None = None,
    *,
    every: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call ``probe`` (sync or async) until it returns something truthy, and return that.

    Fails with ``NotYet`` (an AssertionError) naming ``what`` and the last value seen after
    ``within`` seconds. Exceptions of the ``tolerate`` types count as "not yet" (a server
    still starting refuses connections); any other exception fails at once.
    """
    attempts = _Attempts(probe, within, what)
    while True:
        try:
            result = probe()
            if inspect.isawaitable(result):
                result = await result
        except tolerate as error:
            attempts.tolerated(error)
        else:
            if attempts.holds(result):
                return result
        await asyncio.sleep(every)


def eventually_blocking(
    probe: Callable[[], T | None],
    within: float = 20.0,
    what: str | None = None,
    *,
    every: float = 0.1,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """``eventually`` for synchronous tests (the browser suite's Playwright is synchronous)."""
    attempts = _Attempts(probe, within, what)
    while True:
        try:
            result = probe()
        except tolerate as error:
            attempts.tolerated(error)
        else:
            if attempts.holds(result):
                return result
        time.sleep(every)
