"""Whole sessions per second, stepped up until p99 scan-to-start passes 1 s; then a py-spy
profile of the busiest service at the breaking rate.

A whole session: code → scan → priced → authorised (hold) → RemoteStart → StartTransaction →
a meter value → unplug (StopTransaction) → cost → billed, the phone polling its session until
"billed". A step is sustained when p99 scan-to-start ≤ 1 s, ≥ 99 % of the scans were billed
within the step's timeout, and nothing failed.

    python bench/sessions.py [--rates 0.5,1,2,5,10,20,50,100,200] [--duration 15]
"""

from __future__ import annotations

import argparse
import time

import pyspy
from common import RESULTS, SMOKE, cpu_seconds, headline, load, pids, write_result
from lag import wait_drained
from loadgen import run_step
from plugpay_platform import catalogue
from scan_to_start import spec, summarise

# CPU per billed session is summed over every service of the catalogue.
SERVICES = [s.name for s in catalogue.SERVICES]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rates", default="2" if SMOKE else "0.5,1,2,5,10,20,50,100,200")
    p.add_argument("--duration", type=float, default=4 if SMOKE else 15)
    p.add_argument("--workers", type=int, default=2 if SMOKE else 4)
    p.add_argument("--profile-s", type=int, default=0 if SMOKE else 15)
    a = p.parse_args()
    before = load()
    steps, best, breaking = [], 0.0, None
    for rate in [float(r) for r in a.rates.split(",")]:
        residual = wait_drained(10 if SMOKE else 120)
        snap = pyspy.cpu_snapshot(SERVICES)
        t = time.time()
        s = summarise(run_step(spec(rate, a.duration, a.workers, "full")), rate, a.duration)
        wall = time.time() - t
        s["backlog_before_step"] = sum(residual.values())
        cpu = {
            svc: sum(cpu_seconds(pid) - snap.get(str(pid), 0.0) for pid in pids(svc))
            for svc in SERVICES
        }
        s["cpu_s_per_service"] = {svc: round(v, 1) for svc, v in cpu.items()}
        s["step_wall_s"] = round(wall, 1)
        # The step's whole CPU (every process of every service, backlog included) per session
        # that reached "billed": the figure to trust on a shared machine, unlike latencies.
        if s["billed"]:
            per = {svc: round(v * 1000 / s["billed"], 1) for svc, v in cpu.items()}
            s["cpu_ms_per_billed_session"] = round(sum(per.values()), 1)
            s["cpu_ms_per_billed_session_per_service"] = per
        p99 = s["scan_to_start_ms"]["p99"]
        s["sustained"] = bool(
            p99 is not None
            and p99 <= 1000
            and not s["failures"]
            and s["billed"] >= 0.99 * s["scans"]
        )
        steps.append(s)
        headline(
            s,
            (
                "rate_per_s",
                "scans",
                "billed",
                "failures",
                "scan_to_start_ms",
                "sustained",
            ),
        )
        if s["sustained"]:
            best = rate
        else:
            breaking = rate
            break
    profile = None
    if a.profile_s and breaking is not None:
        busiest = max(steps[-1]["cpu_s_per_service"], key=steps[-1]["cpu_s_per_service"].get)
        wait_drained(10 if SMOKE else 120)
        holder: dict = {}

        def on_start(_t0: float) -> None:
            holder["p"] = pyspy.start(busiest, a.profile_s)

        raw = run_step(spec(breaking, a.profile_s, a.workers, "full"), on_start=on_start)
        pyspy.wait(holder.get("p", []))
        profile = {
            "service": busiest,
            "rate_per_s": breaking,
            "svg": f"bench/results/profile-{busiest}.svg",
            "summary": pyspy.summarise(RESULTS / f"profile-{busiest}.txt"),
            "run": summarise(raw, breaking, a.profile_s),
        }
    write_result(
        "sessions",
        {
            "steps": steps,
            "highest_sustained_per_s": best,
            "breaking_rate_per_s": breaking,
            "profile": profile,
        },
        before,
    )


if __name__ == "__main__":
    main()
