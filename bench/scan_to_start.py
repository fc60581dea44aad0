"""Scan to start at fixed arrival rates, against the floor, on the bench stack.

    python bench/scan_to_start.py [--rates 10,50,100,200] [--duration 20] [--workers 4]

Writes bench/results/scan_to_start.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from common import BASE_URL, SMOKE, STATE, headline, load, percentiles, write_result
from floor import run_floor
from lag import lag, wait_drained
from loadgen import StepSpec, run_step


def fleet() -> dict:
    f = json.loads((STATE / "bench-fleet.json").read_text())
    excluded = set(f.get("excluded", []))
    f["stations"] = [s for s in f["stations"] if s not in excluded]
    return f


def spec(rate: float, duration: float, workers: int, lifecycle: str, stations: int = 0) -> StepSpec:
    f = fleet()
    # Enough connectors that each is reused only after ~8 s (a scan cycle plus rest).
    stations = stations or max(2 * workers, int(rate * 8 * 1.5 / f["connectors"]) + 1)
    return StepSpec(
        rate=rate,
        duration_s=duration,
        lifecycle=lifecycle,
        workers=workers,
        base_url=BASE_URL,
        stations=f["stations"][: stations or None],
        connectors=f["connectors"],
        station_password=f["station_password"],
        drivers=f["drivers"],
        driver_password=f["driver_password"],
    )


def summarise(raw: dict, rate: float, duration: float) -> dict:
    ok = len(raw["latency_ms"])
    return {
        "rate_per_s": rate,
        "duration_s": duration,
        "scans": raw["scans"],
        "started": ok,
        "failures": raw["failures"],
        "slot_late": raw["slot_late"],
        "errors": raw["errors"][:5],
        "scan_to_start_ms": percentiles(raw["latency_ms"]),
        "scan_to_billed_ms": percentiles(raw["billed_ms"]) if raw["billed_ms"] else None,
        "billed": len(raw["billed_ms"]),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rates", default="5" if SMOKE else "1,2,5,10,50,100,200")
    p.add_argument(
        "--durations",
        default="4" if SMOKE else "20,20,20,20,10,5,3",
        help="seconds per rate (the backlog a saturated step leaves grows with it)",
    )
    p.add_argument("--workers", type=int, default=2 if SMOKE else 4)
    a = p.parse_args()
    before = load()
    steps = []
    rates = [float(r) for r in a.rates.split(",")]
    durations = [float(d) for d in a.durations.split(",")]
    durations += [durations[-1]] * (len(rates) - len(durations))
    for rate, duration in zip(rates, durations, strict=True):
        residual = wait_drained(10 if SMOKE else 120)
        step_load = load()
        raw = run_step(spec(rate, duration, a.workers, "start"))
        s = summarise(raw, rate, duration)
        s["load_before_step"] = step_load
        s["backlog_before_step"] = sum(residual.values())
        s["backlog_after_step"] = sum(asyncio.run(lag()).values())
        fl = run_floor(rate, duration)
        s["floor_ms"] = percentiles(fl["latency_ms"])
        s["floor_lost"] = fl["lost"]
        if s["scan_to_start_ms"]["p50"] and s["floor_ms"]["p50"]:
            s["p50_vs_floor"] = round(s["scan_to_start_ms"]["p50"] / s["floor_ms"]["p50"], 2)
        steps.append(s)
        headline(
            s,
            (
                "rate_per_s",
                "started",
                "scans",
                "failures",
                "scan_to_start_ms",
                "floor_ms",
            ),
        )
        time.sleep(3)
    write_result(
        "scan_to_start",
        {
            "steps": steps,
            "workers": a.workers,
            "method": "open loop, latency from planned scan time to the "
            "station receiving the start command",
        },
        before,
    )


if __name__ == "__main__":
    main()
