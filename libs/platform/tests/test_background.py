"""Background plumbing: a LISTEN/NOTIFY listener survives a dropped connection (real
PostgreSQL), and a periodic task keeps going after a failing step, hurries while busy and stops
cleanly."""

from __future__ import annotations

import asyncio
import uuid

from plugpay_platform.background import PeriodicTask, PgListener
from plugpay_platform.database import asyncpg_url
from plugpay_testing.waiting import eventually
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

CHANNEL = "background_test"


async def test_a_listener_survives_a_dropped_connection(database_url: str) -> None:
    listener_engine = create_async_engine(asyncpg_url(database_url))
    other = create_async_engine(asyncpg_url(database_url))
    heard: list[str] = []
    caught_up: list[int] = []
    listener = PgListener(
        listener_engine,
        {CHANNEL: heard.append},
        name="test-listener",
        on_listening=lambda: caught_up.append(len(heard)),
        check_interval_s=0.2,
        retry_s=0.1,
    )

    async def notify(payload: str) -> None:
        async with other.begin() as conn:
            await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})

    try:
        await listener.start()
        assert listener.listening.is_set() and listener.connects == 1
        await notify("before")
        await eventually(lambda: heard == ["before"], 10, "the first notification")

        # Someone (a failover, an administrator) kills the listening connection.
        async with other.begin() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert killed == 1
        await eventually(lambda: listener.connects == 2, 10, "a second connection")
        # After reconnecting, the owner was told to catch up on what it may have missed.
        assert caught_up == [0, 1]
        await notify("after")
        await eventually(lambda: heard == ["before", "after"], 10, "a notification after")
    finally:
        await listener.stop()
        await listener_engine.dispose()
        await other.dispose()
    assert not listener.listening.is_set()


async def test_a_periodic_task_retries_after_a_failing_step() -> None:
    calls: list[int] = []
    third = asyncio.Event()

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) >= 3:
            third.set()
        if len(calls) == 1:
            raise RuntimeError("the database is away")

    task = PeriodicTask("test-task", step, interval_s=0.01)
    await task.start()
    await asyncio.wait_for(third.wait(), 10)
    await task.stop()
    assert not task.running
    after_stop = len(calls)
    await asyncio.sleep(0)  # one turn of the loop: nothing is scheduled any more
    assert len(calls) == after_stop


async def test_a_busy_step_runs_again_at_once() -> None:
    # An interval far longer than the test: only busy_again can run the later steps.
    due = [3]

    async def step() -> int:
        handled = min(due[0], 1)
        due[0] -= handled
        return handled

    task = PeriodicTask("test-busy", step, interval_s=3600, busy_again=True)
    await task.start()
    try:
        await eventually(lambda: due[0] == 0, 10, "every due item handled")
    finally:
        await task.stop()


async def test_stop_lets_the_step_in_flight_finish_within_its_grace() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[uuid.UUID] = []

    async def step() -> None:
        started.set()
        await release.wait()
        finished.append(uuid.uuid4())

    task = PeriodicTask("test-grace", step, interval_s=3600, grace_s=10)
    await task.start()
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.create_task(task.stop())
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert len(finished) == 1 and not task.running
