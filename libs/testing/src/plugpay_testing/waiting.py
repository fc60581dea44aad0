"""Waiting in tests for something observable to become true, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


class NotYet(AssertionError):
    """What ``eventually`` raises when the condition did not hold in time."""


def _failure(what: str | None, probe: object, within: float, last: object) -> NotYet:
    return NotYet(f"not within {within:g}s: {what or probe}; last: {last!r}")


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
    deadline = time.monotonic() + within
    last: object = None
    while True:
        try:
            result = probe()
            if inspect.isawaitable(result):
                result = await result
        except tolerate as error:
            result, last = None, error
        else:
            last = result
        if result:
            return result
        if time.monotonic() > deadline:
            raise _failure(what, probe, within, last)
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
    deadline = time.monotonic() + within
    last: object = None
    while True:
        try:
            result = probe()
        except tolerate as error:
            result, last = None, error
        else:
            last = result
        if result:
            return result
        if time.monotonic() > deadline:
            raise _failure(what, probe, within, last)
        time.sleep(every)
