"""Embedded mode (`plugpay run`: all five services in one process, embedded PostgreSQL and the
embedded log): cold start to first page on a fresh data directory, then scan to start at
20 scans/s with the same open-loop clients as the distributed benchmark.

    python bench/embedded.py [--rate 20] [--duration 15] [--port 8390]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import ROOT, SMOKE, load, percentiles, write_result
from fleet import ensure_fleet
from loadgen import StepSpec, run_step


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=float, default=5 if SMOKE else 20)
    p.add_argument("--duration", type=float, default=4 if SMOKE else 15)
    p.add_argument("--port", type=int, default=8390)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    before = load()
    data = Path(tempfile.mkdtemp(prefix="plugpay-bench-"))
    base = f"http://127.0.0.1:{a.port}"
    (ROOT / ".local").mkdir(exist_ok=True)
    log = open(ROOT / ".local" / "bench-embedded-run.log", "w")  # noqa: SIM115
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "plugpay"),
            "run",
            "--data",
            str(data),
            "--port",
            str(a.port),
            "--stations",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    result: dict = {"rate_per_s": a.rate, "duration_s": a.duration}
    try:
        first_page = None
        while time.perf_counter() - t0 < 180:
            try:
                r = httpx.get(f"{base}/", timeout=2)
                if r.status_code == 200:
                    first_page = time.perf_counter() - t0
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        result["cold_start_to_first_page_s"] = round(first_page, 2) if first_page else None
        # Ready for drivers: the demo driver can log in (auth seeded, migrations done).
        while time.perf_counter() - t0 < 240:
            r = httpx.post(
                f"{base}/auth/token",
                data={"username": "driver@example.com", "password": "demo-password-1"},
                timeout=5,
            )
            if r.status_code == 200:
                break
            time.sleep(0.2)
        result["cold_start_to_login_s"] = round(time.perf_counter() - t0, 2)
        # Every service up (the front door opens before they have all started).
        for prefix in ("/auth", "/stations", "/sessions", "/pricing", "/billing"):
            while time.perf_counter() - t0 < 240:
                try:
                    if httpx.get(f"{base}{prefix}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        admin_pw = (data / "secrets" / "bootstrap-admin-password").read_text().strip()
        stations = max(4, int(a.rate * 8 * 1.5 / 10) + 1)
        t = time.perf_counter()
        fleet = asyncio.run(
            ensure_fleet(stations, 10, 20, base_url=base, state=data, admin_password=admin_pw)
        )
        result["fleet_setup_s"] = round(time.perf_counter() - t, 1)
        spec = StepSpec(
            rate=a.rate,
            duration_s=a.duration,
            lifecycle="start",
            workers=a.workers,
            base_url=base,
            stations=fleet["stations"],
            connectors=10,
            station_password=fleet["station_password"],
            drivers=fleet["drivers"],
            driver_password=fleet["driver_password"],
        )
        raw = run_step(spec)
        result.update(
            {
                "scans": raw["scans"],
                "started": len(raw["latency_ms"]),
                "failures": raw["failures"],
                "errors": raw["errors"][:5],
                "scan_to_start_ms": percentiles(raw["latency_ms"]),
            }
        )
        print(result, file=sys.stderr)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(data, ignore_errors=True)
    write_result("embedded", result, before)


if __name__ == "__main__":
    main()
