"""Failure throttling with exponential back-off: a pure rule plus a bounded in-memory store.

A key (an account, a station, a client address, or a pair of them) gets some failures for
free; each further failure blocks the key for twice as long as the previous one, capped;
failures older than ``forget_after`` are forgiven. The clock is always passed in, so tests
move time instead of sleeping.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class ThrottleRule:
    """Failures allowed for free, then an exponentially growing wait, capped."""

    free_failures: int
    base_delay_s: float
    max_delay_s: float
    forget_after: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class ThrottleState:
    """What is remembered about one throttle key."""

    failures: int = 0
    last_failure_at: datetime | None = None
    blocked_until: datetime | None = None


def retry_after_s(state: ThrottleState, now: datetime) -> int | None:
    """Whole seconds until the next attempt is allowed, or None when it is allowed now."""
    if state.blocked_until is None or state.blocked_until <= now:
        return None
    return max(1, int((state.blocked_until - now).total_seconds() + 0.999))


def record_failure(state: ThrottleState, rule: ThrottleRule, now: datetime) -> ThrottleState:
    """The state after one more failed attempt."""
    failures = state.failures
    if state.last_failure_at is not None and now - state.last_failure_at > rule.forget_after:
        failures = 0  # old failures are forgiven
    failures += 1
    over = failures - rule.free_failures
    blocked_until = state.blocked_until
    if over > 0:
        delay = min(rule.max_delay_s, rule.base_delay_s * 2 ** min(over - 1, 30))
        blocked_until = now + timedelta(seconds=delay)
    return ThrottleState(failures=failures, last_failure_at=now, blocked_until=blocked_until)


class FailureThrottle:
    """Throttle states per key in memory, least recently failed evicted beyond ``capacity``.

    For checks whose failures are cheap to count per process (a replica counts its own): a
    guesser spread over replicas still meets the back-off in each of them.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._states: OrderedDict[Hashable, ThrottleState] = OrderedDict()

    def retry_after_s(self, keys: Iterable[Hashable], now: datetime) -> int | None:
        """The longest wait any of ``keys`` imposes now, or None when none blocks."""
        waits = [retry_after_s(self._states.get(k, ThrottleState()), now) for k in keys]
        blocking = [w for w in waits if w is not None]
        return max(blocking) if blocking else None

    def fail(self, rules: dict[Hashable, ThrottleRule], now: datetime) -> None:
        """Count one failure against each key under its rule."""
        for key, rule in rules.items():
            self._states[key] = record_failure(self._states.pop(key, ThrottleState()), rule, now)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Clear ``keys`` (a success)."""
        for key in keys:
            self._states.pop(key, None)

    def state(self, key: Hashable) -> ThrottleState:
        """What is remembered about ``key``."""
        return self._states.get(key, ThrottleState())
