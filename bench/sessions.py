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
from typing import Any

import pyspy
from common import (
    RESULTS,
    SMOKE,
    commits,
    headline,
    infrastructure_cpu_seconds,
    load,
    pids,
    write_result,
)
from lag import wait_drained
from loadgen import run_step
from plugpay_platform import catalogue
from scan_to_start import spec, summarise

# CPU per billed session is summed over every service of the catalogue.
SERVICES = [s.name for s in catalogue.SERVICES]
DATABASES = {s.name: s.database for s in catalogue.SERVICES}


def cpu_since(snap: dict[str, float], now: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds each service spent between two ``pyspy.cpu_snapshot``s (``now``: this
    moment); a process started in between counts from zero."""
    now = pyspy.cpu_snapshot(SERVICES) if now is None else now
    return {
        svc: sum(now[str(pid)] - snap.get(str(pid), 0.0) for pid in pids(svc) if str(pid) in now)
        for svc in SERVICES
    }


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
        window: dict[str, Any] = {}

        def load_began(_t0: float, window: dict[str, Any] = window) -> None:
            window["began"], window["snap"] = time.time(), pyspy.cpu_snapshot(SERVICES)
            window["commits"] = commits(DATABASES)
            window["infrastructure"] = infrastructure_cpu_seconds()

        def load_ended(window: dict[str, Any] = window) -> None:
            wait_drained(10 if SMOKE else 120)  # receipts and other tails of the last sessions
            window["ended"], window["snap_end"] = time.time(), pyspy.cpu_snapshot(SERVICES)
            window["commits_end"] = commits(DATABASES)
            window["infrastructure_end"] = infrastructure_cpu_seconds()

        t = time.time()
        raw = run_step(
            spec(rate, a.duration, a.workers, "full"), on_start=load_began, on_done=load_ended
        )
        s = summarise(raw, rate, a.duration)
        wall = time.time() - t
        s["backlog_before_step"] = sum(residual.values())
        whole = cpu_since(snap)
        s["step_cpu_s_per_service"] = {svc: round(v, 1) for svc, v in whole.items()}
        s["step_wall_s"] = round(wall, 1)
        # The sessions' CPU: every process of every service from the first code request until
        # the last session's tails are consumed, backlog included, per session that reached
        # "billed" (the figure to trust on a shared machine, unlike latencies). Connecting the
        # fleet and logging the drivers in (every step, before the load) and disconnecting it
        # after are not the sessions' work; ``step_cpu_s_per_service`` keeps the whole step.
        ended = window.get("snap_end") or pyspy.cpu_snapshot(SERVICES)
        cpu = cpu_since(window.get("snap", snap), ended)
        s["cpu_s_per_service"] = {svc: round(v, 1) for svc, v in cpu.items()}
        s["load_wall_s"] = round(window.get("ended", time.time()) - window.get("began", t), 1)
        if s["billed"]:
            per = {svc: round(v * 1000 / s["billed"], 1) for svc, v in cpu.items()}
            s["cpu_ms_per_billed_session"] = round(sum(per.values()), 1)
            s["cpu_ms_per_billed_session_per_service"] = per
            if "commits" in window and "commits_end" in window:
                # Where the CPU goes, mostly: each commit is a transaction's statements and
                # round trips (bench/floor.py needs 7 for a scan).
                committed = {
                    svc: (window["commits_end"][svc] - window["commits"][svc]) / s["billed"]
                    for svc in DATABASES
                }
                s["commits_per_billed_session"] = round(sum(committed.values()), 1)
                s["commits_per_billed_session_per_service"] = {
                    svc: round(v, 1) for svc, v in committed.items()
                }
            # Not part of the services' sum (the target's): the servers they talk to, over the
            # same window, so a change that moves work into PostgreSQL shows.
            if "infrastructure" in window and "infrastructure_end" in window:
                s["infrastructure_cpu_ms_per_billed_session"] = {
                    server: round((used - window["infrastructure"][server]) * 1000 / s["billed"], 1)
                    for server, used in window["infrastructure_end"].items()
                    if server in window["infrastructure"]
                }
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
