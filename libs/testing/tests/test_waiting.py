"""eventually: returns the first truthy answer, fails naming what it waited for."""

from __future__ import annotations

import itertools

import pytest
from plugpay_testing import NotYet, eventually, eventually_blocking


async def test_returns_the_first_truthy_value_of_a_sync_or_async_probe() -> None:
    counter = itertools.count()
    assert await eventually(lambda: next(counter) >= 3 and "ready", within=5) == "ready"

    calls: list[int] = []

    async def probe() -> list[int] | None:
        calls.append(1)
        return calls if len(calls) == 3 else None

    assert await eventually(probe, within=5, every=0.001) == [1, 1, 1]


async def test_fails_naming_what_and_the_last_value() -> None:
    billed: list[str] = []
    with pytest.raises(NotYet, match=r"not within 0.05s: the session is billed; last: \[\]"):
        await eventually(lambda: billed, within=0.05, what="the session is billed")


async def test_tolerated_errors_are_not_yet_others_fail_at_once() -> None:
    attempts = itertools.count()

    def connect() -> str:
        if next(attempts) < 2:
            raise ConnectionRefusedError("starting")
        return "connected"

    assert await eventually(connect, within=5, every=0.001, tolerate=(OSError,)) == "connected"

    def broken() -> str:
        raise ValueError("a bug, not a wait")

    with pytest.raises(ValueError, match="a bug"):
        await eventually(broken, within=5, tolerate=(OSError,))


def test_blocking_variant_for_synchronous_tests() -> None:
    counter = itertools.count()
    assert eventually_blocking(lambda: next(counter) == 2, within=5, every=0.001) is True
    with pytest.raises(NotYet, match="never; last: ConnectionRefusedError"):
        eventually_blocking(_refuse, within=0.02, what="never", tolerate=(OSError,))


def _refuse() -> None:
    raise ConnectionRefusedError
