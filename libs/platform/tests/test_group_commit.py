"""GroupCommit: a burst shares a write, a lone item is not delayed, failures reach their callers."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

import pytest
from plugpay_platform.group_commit import GroupCommit


class Recorder:
    """A write that records its batches and can be held open or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.writing = asyncio.Event()
        self.fail_on: set[int] = set()

    async def write(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.writing.set()
        await self.gate.wait()
        if self.fail_on & set(items):
            raise ValueError(f"refused {sorted(self.fail_on & set(items))}")
        return [i * 10 for i in items]


async def test_a_lone_item_is_written_at_once_with_its_own_result() -> None:
    rec = Recorder()
    group = GroupCommit(rec.write)
    assert await group.submit(7) == 70
    assert rec.batches == [[7]]


async def test_what_arrives_while_a_batch_is_written_shares_the_next_one() -> None:
    rec = Recorder()
    rec.gate.clear()
    group = GroupCommit(rec.write)
    first = asyncio.create_task(group.submit(1))
    await rec.writing.wait()
    rest = [asyncio.create_task(group.submit(i)) for i in range(2, 52)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [i * 10 for i in range(2, 52)]
    assert rec.batches == [[1], list(range(2, 52))]
    assert group.batches == 2


async def test_batches_are_cut_at_max_batch_in_arrival_order() -> None:
    rec = Recorder()
    group = GroupCommit(rec.write, max_batch=4)
    results = await asyncio.gather(*(group.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert rec.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_still_goes() -> None:
    rec = Recorder()
    rec.fail_on = {3}
    group = GroupCommit(rec.write, max_batch=4)
    outcomes = await asyncio.gather(*(group.submit(i) for i in range(6)), return_exceptions=True)
    assert [type(o) for o in outcomes[:4]] == [ValueError] * 4
    assert "refused [3]" in str(outcomes[0])
    assert outcomes[4:] == [40, 50]


async def test_a_write_that_answers_the_wrong_number_of_results_fails_loudly() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return [0]

    group = GroupCommit(short)
    with pytest.raises(RuntimeError, match="1 results for a batch of 2"):
        await asyncio.gather(group.submit(1), group.submit(2))


async def test_a_caller_that_stops_waiting_does_not_stop_its_write() -> None:
    rec = Recorder()
    rec.gate.clear()
    group = GroupCommit(rec.write)
    waiting = asyncio.create_task(group.submit(5))
    await rec.writing.wait()
    waiting.cancel()
    rec.gate.set()
    await group.idle()
    assert rec.batches == [[5]] and waiting.cancelled()


def test_a_batch_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        GroupCommit(Recorder().write, max_batch=0)


CALLER = contextvars.ContextVar[str]("caller")


async def test_a_batch_is_written_outside_its_callers_context() -> None:
    seen: list[str | None] = []

    async def write(items: Sequence[int]) -> list[int]:
        seen.append(CALLER.get(None))
        return list(items)

    group = GroupCommit(write)

    async def caller(name: str, item: int) -> int:
        CALLER.set(name)
        return await group.submit(item)

    assert await asyncio.gather(caller("a", 1), caller("b", 2)) == [1, 2]
    assert seen == [None]
