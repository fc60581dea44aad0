"""Overload: twice the highest sustained rate of whole sessions for a bounded time, between two
stretches at half that rate, on the bench stack.

    python bench/overload.py [--sustained 2] [--before 15] [--burst 60] [--after 45]

What it shows (bench/results/overload.json, and overload.png: latency and throughput over time):
- scans beyond capacity are refused fast (503 ``busy`` + Retry-After, plugpay_platform.admission)
  and the phone asks again after the wait: how many, and how long a refusal took (≤ 100 ms);
  latency runs from the planned time, so a refused scan's includes its wait; the scans admitted
  at their first attempt are also reported alone;
- nothing is lost or billed twice: what the event log says became of every accepted scan
  (billed, denied, abandoned, still charging...), at most one ``SessionBilled`` each;
- latency is back to normal after the burst: per 5-second window of planned scan times, p50/p99
  scan-to-start, and the first second after the burst from which every window is normal again
  (p99 within 1 s, the sustained bar, or within 1.5 times the p99 before the burst);
- queue depths: every consumer group's lag, sampled every 2 s;
- CPU seconds per service over the run (from /proc; the figure to trust on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import threading
import time
from typing import Any

import pyspy
from common import (
    RESULTS,
    SMOKE,
    TOPIC_PREFIX,
    cpu_seconds,
    headline,
    load,
    percentiles,
    pids,
    time_plot,
    write_result,
)
from lag import lag, wait_drained
from loadgen import run_step
from plugpay_platform import catalogue
from scan_to_start import fleet, spec, summarise

SERVICES = [s.name for s in catalogue.SERVICES]
WINDOW_S = 5.0


def sustained_rate() -> float:
    """The highest sustained rate of the last whole-sessions run (2/s when there is none)."""
    path = RESULTS / f"sessions{'-smoke' if SMOKE else ''}.json"
    try:
        rate = float(json.loads(path.read_text()).get("highest_sustained_per_s") or 0)
    except (OSError, ValueError):
        rate = 0.0
    return rate or 2.0


# What became of an accepted scan, most final first (the session's events on the log).
OUTCOMES = (
    ("SessionBilled", "billed"),
    ("SessionDenied", "denied"),
    ("SessionAbandoned", "abandoned"),
    ("SessionFailed", "failed"),
    ("SessionCompleted", "completed, not billed yet"),
    ("ChargingStarted", "charging (started after the bench gave up; nobody unplugged)"),
    ("SessionAuthorized", "authorised, not started"),
    ("SessionPriced", "priced"),
    ("SessionCodeScanned", "scanned"),
)


def session_events(session_ids: set[str]) -> dict[str, collections.Counter[str]]:
    """Distinct events per type of each of ``session_ids`` on the stack's sessions topic."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from common import KAFKA
    from plugpay_events import serde
    from plugpay_events.topics import SESSIONS

    async def read() -> dict[str, collections.Counter[str]]:
        topic = f"{TOPIC_PREFIX}{SESSIONS.name}"
        consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA, enable_auto_commit=False, isolation_level="read_committed"
        )
        await consumer.start()
        seen: dict[str, dict[str, set[str]]] = collections.defaultdict(
            lambda: collections.defaultdict(set)
        )
        try:
            parts = [TopicPartition(topic, p) for p in range(SESSIONS.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for records in batches.values():
                    for record in records:
                        if record.key is None or record.key.decode() not in session_ids:
                            continue
                        envelope = serde.decode(record.value)
                        seen[envelope.aggregate_id][envelope.type].add(str(envelope.event_id))
        finally:
            await consumer.stop()
        return {
            sid: collections.Counter({t: len(ids) for t, ids in per.items()})
            for sid, per in seen.items()
        }

    return asyncio.run(read())


class LagSampler:
    """Consumer-group lag every ``every_s`` seconds in a thread, while the load runs."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = 0.0

    def start(self, t0: float) -> None:
        self.t0 = t0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                groups = asyncio.run(lag())
            except Exception as error:  # a sample missed, not the run
                groups = {"error": repr(error)[:80]}  # type: ignore[dict-item]
            self.samples.append({"t_s": round(time.time() - self.t0, 1), "lag": groups})
            self._stop.wait(self.every_s)


def windows(
    timeline: list[tuple[float, float, int]], busy: list[tuple[float, float]], total_s: float
) -> list[dict[str, Any]]:
    """Per window of planned scan times: scans started, their latency, busy refusals."""
    out = []
    n = int(total_s // WINDOW_S) + (1 if total_s % WINDOW_S else 0)
    for w in range(n):
        lo, hi = w * WINDOW_S, (w + 1) * WINDOW_S
        lat = [ms for t, ms, _ in timeline if lo <= t < hi]
        out.append(
            {
                "from_s": lo,
                "started": len(lat),
                "started_per_s": round(len(lat) / WINDOW_S, 2),
                "busy_refusals": sum(1 for t, _ in busy if lo <= t < hi),
                "scan_to_start_ms": percentiles(lat),
            }
        )
    return out


def recovered_after(rows: list[dict[str, Any]], burst_end_s: float, normal_p99: float) -> Any:
    """Seconds after the burst from which every window's p99 is normal (None: never)."""
    after = [r for r in rows if r["from_s"] >= burst_end_s]
    for i, row in enumerate(after):
        if all(
            r["scan_to_start_ms"]["p99"] is None or r["scan_to_start_ms"]["p99"] <= normal_p99
            for r in after[i:]
        ):
            return row["from_s"] - burst_end_s
    return None


def plot(rows: list[dict[str, Any]], phases: list[tuple[float, float]], name: str) -> str | None:
    x = [r["from_s"] + WINDOW_S / 2 for r in rows]

    def draw(top: Any, bottom: Any) -> None:
        for key in ("p50", "p99"):
            top.plot(x, [r["scan_to_start_ms"][key] for r in rows], marker="o", label=key)
        top.set_ylabel("scan → start (ms)")
        top.set_yscale("log")
        top.legend()
        bottom.bar(x, [r["started_per_s"] for r in rows], width=WINDOW_S * 0.8, label="started/s")
        busy = [r["busy_refusals"] / WINDOW_S for r in rows]
        bottom.plot(x, busy, color="red", marker="x", label="busy/s")
        bottom.set_ylabel("per second")
        bottom.set_xlabel("planned scan time (s)")
        bottom.legend()
        start = 0.0
        for rate, seconds in phases:
            for ax in (top, bottom):
                ax.axvspan(start, start + seconds, alpha=0.08 if rate > phases[0][0] else 0.0)
            start += seconds

    title = "Overload: whole sessions at twice the sustained rate (shaded), then half"
    return time_plot(name, title, draw)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sustained", type=float, default=0.0, help="default: sessions.json's")
    p.add_argument("--before", type=float, default=4 if SMOKE else 15)
    p.add_argument("--burst", type=float, default=6 if SMOKE else 60)
    p.add_argument("--after", type=float, default=6 if SMOKE else 45)
    p.add_argument("--workers", type=int, default=2 if SMOKE else 4)
    a = p.parse_args()
    before = load()
    sustained = a.sustained or sustained_rate()
    phases = [(sustained / 2, a.before), (sustained * 2, a.burst), (sustained / 2, a.after)]
    total = sum(s for _, s in phases)
    residual = wait_drained(10 if SMOKE else 120)
    # Slots for the peak rate with every session as slow as the timeout allows.
    stations = min(len(fleet()["stations"]), int(sustained * 2 * 30 / fleet()["connectors"]) + 2)
    step = spec(sustained * 2, total, a.workers, "full", stations=stations)
    step.phases = phases
    snap = pyspy.cpu_snapshot(SERVICES)
    sampler = LagSampler()
    wall = time.time()
    raw = run_step(step, on_start=sampler.start)
    sampler.stop()
    wall = time.time() - wall
    cpu = {
        svc: round(sum(cpu_seconds(pid) - snap.get(str(pid), 0.0) for pid in pids(svc)), 2)
        for svc in SERVICES
    }
    drained = wait_drained(30 if SMOKE else 120)
    accepted = set(raw["session_ids"])
    events = session_events(accepted)
    billed = collections.Counter({sid: c["SessionBilled"] for sid, c in events.items()})
    outcomes: collections.Counter[str] = collections.Counter()
    for sid in accepted:
        have = events.get(sid, collections.Counter())
        outcomes[next((name for t, name in OUTCOMES if have[t]), "nothing on the log")] += 1
    rows = windows(raw["timeline"], raw["busy_ms"], total)
    first, burst_end = phases[0][1], phases[0][1] + phases[1][1]
    baseline = [ms for t, ms, _ in raw["timeline"] if t < first]
    base_p99 = percentiles(baseline)["p99"]
    normal_p99 = max(1000.0, 1.5 * base_p99) if base_p99 else 1000.0
    summary = summarise(raw, sustained * 2, total)
    summary.pop("rate_per_s")
    billed_ids = {sid for sid, n in billed.items() if n >= 1}
    result = {
        "sustained_per_s": sustained,
        "phases": [{"rate_per_s": r, "seconds": s} for r, s in phases],
        **summary,
        "busy_refusals": raw["busy"],
        "busy_refusal_ms": percentiles([ms for _, ms in raw["busy_ms"]]),
        "accepted": len(accepted),
        "accepted_billed": len(billed_ids & accepted),
        # Accepted scans of which the log shows nothing at all: truly lost. The others not
        # billed are in ``outcomes`` (a start later than the bench's 20 s wait is charging).
        "lost": outcomes["nothing on the log"],
        "accepted_not_billed": len(accepted - billed_ids),
        "outcomes": dict(outcomes),
        "billed_twice": sum(1 for n in billed.values() if n > 1),
        "per_phase": [
            {
                "rate_per_s": r,
                "scan_to_start_ms": percentiles(
                    [ms for t, ms, _ in raw["timeline"] if lo <= t < lo + s]
                ),
                # Admitted at the first attempt: what the capacity left to them looked like.
                "first_try_scan_to_start_ms": percentiles(
                    [ms for t, ms, n in raw["timeline"] if lo <= t < lo + s and n == 0]
                ),
                "busy_refusals": sum(1 for t, _ in raw["busy_ms"] if lo <= t < lo + s),
            }
            for (r, s), lo in zip(phases, [0.0, first, burst_end], strict=True)
        ],
        "normal_p99_ms": normal_p99,
        "recovered_after_burst_s": recovered_after(rows, burst_end, normal_p99),
        "windows": rows,
        "consumer_lag": sampler.samples,
        "max_consumer_lag": max(
            (sum(v for v in s["lag"].values() if isinstance(v, int)) for s in sampler.samples),
            default=None,
        ),
        "backlog_before": sum(residual.values()),
        "backlog_after_drain": sum(drained.values()),
        "cpu_s_per_service": cpu,
        "cpu_ms_per_billed_session": (
            round(sum(cpu.values()) * 1000 / len(billed_ids), 1) if billed_ids else None
        ),
        "wall_s": round(wall, 1),
        "plot": plot(rows, phases, f"overload{'-smoke' if SMOKE else ''}.png"),
    }
    headline(
        result,
        (
            "scans",
            "accepted",
            "lost",
            "billed_twice",
            "busy_refusals",
            "busy_refusal_ms",
            "recovered_after_burst_s",
            "failures",
        ),
    )
    write_result("overload", result, before)


if __name__ == "__main__":
    main()
