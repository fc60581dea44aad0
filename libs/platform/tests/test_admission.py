"""Admission control: the limiter's slots and queue, and the middleware's fast 503 + Retry-After
on the routes a service sheds (and on no other)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI
from plugpay_events.bus.embedded import EmbeddedEventBus
from plugpay_events.outbox import define_outbox_tables
from plugpay_platform.admission import AdmissionLimiter, AdmissionPolicy
from plugpay_platform.app import build_service_app
from plugpay_platform.runtime import ServiceRuntime
from plugpay_platform.settings import PlatformSettings, ServiceSettings
from pydantic import SecretStr
from sqlalchemy import MetaData

UNUSED_URL = "postgresql+asyncpg://nobody@127.0.0.1:9/none"  # no lifespan: never connected


async def until(condition: Callable[[], bool], step_s: float = 0.0) -> None:
    """Let other tasks run until ``condition`` holds (an observable state, not a delay)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(step_s)
    raise AssertionError("condition never held")


async def test_admits_up_to_the_limit_then_refuses_without_waiting_when_no_queue() -> None:
    limiter = AdmissionLimiter(AdmissionPolicy(max_in_flight=2, max_wait_ms=0))
    assert await limiter.acquire() and await limiter.acquire()
    assert not await limiter.acquire()
    assert (limiter.in_flight, limiter.admitted, limiter.refused) == (2, 2, 1)
    limiter.release()
    assert await limiter.acquire()
    assert limiter.in_flight == 2


async def test_a_waiter_gets_the_released_slot_first_come_first_served() -> None:
    limiter = AdmissionLimiter(AdmissionPolicy(max_in_flight=1, max_wait_ms=100, max_queue=4))
    assert await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await until(lambda: limiter.waiting == 2)
    limiter.release()
    assert await first is True
    assert limiter.in_flight == 1  # handed over, not freed and taken again
    assert await second is False  # nobody released within its wait
    assert limiter.waiting == 0 and limiter.refused == 1
    limiter.release()
    assert limiter.in_flight == 0


async def test_a_waiter_is_refused_after_the_wait_and_a_full_queue_at_once() -> None:
    limiter = AdmissionLimiter(AdmissionPolicy(max_in_flight=1, max_wait_ms=30, max_queue=1))
    assert await limiter.acquire()
    queued = asyncio.create_task(limiter.acquire())
    await until(lambda: limiter.waiting == 1)
    started = time.perf_counter()
    assert await limiter.acquire() is False  # the queue is full: no wait at all
    assert time.perf_counter() - started < 0.01
    assert await queued is False
    assert limiter.waiting == 0 and limiter.in_flight == 1


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    limiter = AdmissionLimiter(AdmissionPolicy(max_in_flight=1, max_wait_ms=100))
    assert await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await until(lambda: limiter.waiting == 1)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert limiter.waiting == 0
    limiter.release()
    assert limiter.in_flight == 0


async def test_no_limit_when_max_in_flight_is_zero() -> None:
    limiter = AdmissionLimiter(AdmissionPolicy(max_in_flight=0))
    assert all([await limiter.acquire() for _ in range(1000)])
    limiter.release()
    assert limiter.in_flight == 0


def test_settings_make_the_policy() -> None:
    settings = PlatformSettings(
        admission_max_in_flight=7,
        admission_max_wait_ms=20,
        admission_max_queue=3,
        admission_retry_after_s=2,
    )
    assert settings.admission_policy() == AdmissionPolicy(7, 20, 3, 2, max_loop_lag_ms=500)


async def test_a_lagging_event_loop_refuses_at_once_until_the_lag_is_forgotten() -> None:
    limiter = AdmissionLimiter(AdmissionPolicy(max_in_flight=10, max_loop_lag_ms=100))
    limiter.observe_loop_lag(0.4)
    assert limiter.overloaded()
    assert await limiter.acquire() is False
    assert limiter.in_flight == 0
    limiter.observe_loop_lag(0.0)  # 200 ms remembered
    assert limiter.overloaded()
    limiter.observe_loop_lag(0.001)  # 100 ms remembered: at the bound, not beyond
    assert not limiter.overloaded()
    assert await limiter.acquire() is True


async def test_the_probe_measures_a_blocked_loop() -> None:
    limiter = AdmissionLimiter(AdmissionPolicy(max_loop_lag_ms=50))
    limiter.watch_loop()
    await asyncio.sleep(0)  # let the probe schedule its first timer
    time.sleep(0.2)  # noqa: ASYNC251 -- the loop blocked, as by CPU-bound work
    await until(lambda: limiter.loop_lag_s > 0.0, step_s=0.01)
    assert limiter.loop_lag_s >= 0.1 and limiter.overloaded()
    await limiter.stop()


def demo_app(policy: PlatformSettings, gate: asyncio.Event, entered: asyncio.Event) -> FastAPI:
    router = APIRouter()

    @router.post("/demo/scan")
    async def scan() -> dict[str, bool]:
        entered.set()
        await gate.wait()
        return {"ok": True}

    @router.post("/demo/things/{key}/stop")
    async def stop(key: str) -> dict[str, str]:
        return {"stopped": key}

    runtime = ServiceRuntime(
        name="demo",
        settings=ServiceSettings(database_url=SecretStr(UNUSED_URL), platform=policy),
        migrations=Path("."),
        outbox_tables=define_outbox_tables(MetaData()),
        bus_factory=lambda: EmbeddedEventBus(UNUSED_URL),
    )
    return build_service_app(
        runtime, [router], title="Demo", prefix="/demo", shed_paths=("/demo/scan",)
    )


async def test_the_middleware_refuses_fast_with_retry_after_and_spares_other_routes() -> None:
    gate, entered = asyncio.Event(), asyncio.Event()
    app = demo_app(
        PlatformSettings(
            admission_max_in_flight=1,
            admission_max_wait_ms=20,
            admission_retry_after_s=3,
            admission_max_loop_lag_ms=0,  # the in-flight bound alone, whatever the machine's load
        ),
        gate,
        entered,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        holder = asyncio.create_task(http.post("/demo/scan"))
        await entered.wait()
        started = time.perf_counter()
        refused = await http.post("/demo/scan")
        took = time.perf_counter() - started
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert refused.json()["reason"] == "busy"
        assert took < 0.1  # the bound: refused within 100 ms
        # A running session's path is never shed, however busy the phone routes are.
        stopped = await http.post("/demo/things/a/stop")
        assert stopped.status_code == 200
        gate.set()
        assert (await holder).status_code == 200
        assert (await http.post("/demo/scan")).status_code == 200
    assert app.state.admission.in_flight == 0


async def test_a_backlog_the_service_reports_refuses_at_once_and_a_failing_probe_admits() -> None:
    limiter = AdmissionLimiter(AdmissionPolicy(max_in_flight=10))
    answers = [True]
    calls = [0]

    async def probe() -> bool:
        calls[0] += 1
        if not answers:
            raise OSError("database unreachable")
        return answers[0]

    await limiter.watch_backlog(probe, every_s=0.01)
    await until(lambda: limiter.backlogged, step_s=0.01)
    assert await limiter.acquire() is False
    answers[0] = False
    await until(lambda: not limiter.backlogged, step_s=0.01)
    assert await limiter.acquire() is True
    answers.clear()  # no answer is no evidence of a backlog
    refused, failing_from = limiter.refused, calls[0]
    await until(lambda: calls[0] >= failing_from + 3, step_s=0.01)
    assert not limiter.backlogged and await limiter.acquire() is True
    assert limiter.refused == refused
    await limiter.stop()
