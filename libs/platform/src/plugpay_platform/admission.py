"""Admission control: beyond capacity a phone request is refused at once, not queued for seconds.

A burst of scans used to become 20-second stalls for every driver (docs/performance.md). Here a
process admits at most ``max_in_flight`` of the requests it may shed at a time; a request that
finds them all busy waits for a slot at most ``max_wait_ms`` (a short queue absorbs jitter), and
is then refused with ``503`` + ``Retry-After`` and the shared error body, reason ``busy``, before
any of its work is done — so a refused scan has no effect and the phone simply asks again.
The same refusal, without waiting, while the process's event loop lags (CPU saturated) or while
the service reports a backlog downstream (``watch_backlog``: session-svc's scans waiting too
long for their authorisation), since a request admitted then would only join the queue.

Only the routes a service names are shed (starting a new session: a scan, its price and the
driver's account). Station traffic (OCPP frames, the consumers of station events) and the paths
of sessions already running (stop, live status, webhooks) never meet the limiter, so they are
never shed before phone traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdmissionPolicy:
    """How much a process takes of the requests it may shed (``max_in_flight`` 0: no limit)."""

    max_in_flight: int = 32
    max_wait_ms: int = 50
    max_queue: int = 64
    retry_after_s: int = 1
    # The process is behind on everything (CPU saturated) when its event loop runs ready work
    # this late: then new work is refused at once, however few requests are in flight. 0: off.
    max_loop_lag_ms: int = 0


class AdmissionLimiter:
    """At most ``max_in_flight`` holders; waiters served first come, first served, each for at
    most ``max_wait_ms``; beyond ``max_queue`` waiters a request is refused without waiting."""

    def __init__(self, policy: AdmissionPolicy) -> None:
        self.policy = policy
        self.in_flight = 0
        self.admitted = 0
        self.refused = 0
        self.loop_lag_s = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._probe: asyncio.Task[None] | None = None
        # A service's own sign of a backlog (session-svc: scans waiting too long for their
        # authorisation); polled in the background, so a request never waits for it.
        self.backlogged = False
        self._backlog_task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return len(self._waiters)

    def observe_loop_lag(self, lag_s: float) -> None:
        """One measurement of how late the event loop ran a timer; forgotten by halves."""
        self.loop_lag_s = max(lag_s, self.loop_lag_s / 2)

    def overloaded(self) -> bool:
        """Whether the event loop lags beyond the policy's bound, or the service reports a
        backlog."""
        limit = self.policy.max_loop_lag_ms
        return self.backlogged or (limit > 0 and self.loop_lag_s * 1000 > limit)

    async def watch_backlog(self, probe: Callable[[], Awaitable[bool]], every_s: float) -> None:
        """Poll ``probe`` (True: behind, refuse new work) every ``every_s`` until stop()."""
        if self._backlog_task is None:
            self._backlog_task = asyncio.get_running_loop().create_task(
                self._poll_backlog(probe, every_s), name="admission-backlog"
            )

    async def _poll_backlog(self, probe: Callable[[], Awaitable[bool]], every_s: float) -> None:
        while True:
            try:
                self.backlogged = await probe()
            except asyncio.CancelledError:
                raise
            except Exception:
                # No answer is no evidence of a backlog: admit (the other bounds still hold).
                log.warning("admission backlog probe failed", exc_info=True)
                self.backlogged = False
            await asyncio.sleep(every_s)

    def watch_loop(self) -> None:
        """Start measuring the running loop's lag (once; a no-op when the policy ignores it)."""
        if self.policy.max_loop_lag_ms > 0 and self._probe is None:
            self._probe = asyncio.get_running_loop().create_task(
                self._measure_lag(), name="admission-loop-lag"
            )

    async def stop(self) -> None:
        """Stop measuring the loop's lag and polling the backlog."""
        for task in (self._probe, self._backlog_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._probe = self._backlog_task = None
        self.backlogged = False

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 0.05
        while True:
            before = loop.time()
            await asyncio.sleep(interval)
            self.observe_loop_lag(max(0.0, loop.time() - before - interval))

    async def acquire(self) -> bool:
        """Take a slot (True), or give up after the policy's wait (False); release() after True."""
        policy = self.policy
        if self.overloaded():
            self.refused += 1
            return False
        if policy.max_in_flight <= 0:
            self.admitted += 1
            return True
        if self.in_flight < policy.max_in_flight and not self._waiters:
            self.in_flight += 1
            self.admitted += 1
            return True
        if policy.max_wait_ms <= 0 or len(self._waiters) >= policy.max_queue:
            self.refused += 1
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=policy.max_wait_ms / 1000)
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        if waiter.done():  # release() handed its slot over: in_flight already counts it
            self.admitted += 1
            return True
        self._abandon(waiter)
        self.refused += 1
        return False

    def release(self) -> None:
        """Give a slot back, straight to the longest waiter if there is one."""
        if self.policy.max_in_flight <= 0:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_flight -= 1

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() and not waiter.cancelled():
            # Handed a slot in the same instant it gave up: pass the slot on.
            self.release()
            return
        waiter.cancel()
        with contextlib.suppress(ValueError):  # release() may have popped it already
            self._waiters.remove(waiter)


def busy_body() -> bytes:
    """The shared error body of a refusal for lack of capacity."""
    return json.dumps(
        {"reason": "busy", "message": "Plugpay is busy right now; try again in a moment."}
    ).encode()


class AdmissionMiddleware:
    """Sheds the HTTP requests whose path matches one of ``paths`` (shell patterns such as
    ``/pricing/stations/*/quote``) through ``limiter``; every other request passes untouched."""

    def __init__(
        self, app: ASGIApp, *, limiter: AdmissionLimiter, paths: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.paths = tuple(paths)

    def sheds(self, path: str) -> bool:
        """Whether a request to ``path`` may be refused for lack of capacity."""
        return any(fnmatchcase(path, pattern) for pattern in self.paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.sheds(scope["path"]):
            await self.app(scope, receive, send)
            return
        self.limiter.watch_loop()
        started = time.perf_counter()
        if not await self.limiter.acquire():
            await self._refuse(send, waited_s=time.perf_counter() - started)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release()

    async def _refuse(self, send: Send, *, waited_s: float) -> None:
        body = busy_body()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.limiter.policy.retry_after_s).encode()),
                    (b"cache-control", b"no-store"),
                    # How long it queued before the refusal, for the benchmarks and the curious.
                    (b"server-timing", f"admission;dur={waited_s * 1000:.1f}".encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
