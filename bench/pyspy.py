"""py-spy (PyPI, run through `uv tool run`, no change to the workspace's lock) on a bench-stack
service while load runs; a flame graph (SVG) and collapsed stacks, summarised to the functions
where the samples were (self time and inclusive time)."""

from __future__ import annotations

import collections
import subprocess
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT, cpu_seconds, pids

# Our services' and domain libraries' code (not the platform's server and middleware, which
# wrap every request and say little about where the time goes).
OUR_PACKAGES = ("_svc/", "station_gateway/", "plugpay_events/", "plugpay_tariffs/")
PYSPY = ["python3", "-m", "uv", "tool", "run", "--from", "py-spy", "py-spy"]


def start(service: str, duration_s: int, tag: str = "") -> list[subprocess.Popen[bytes]]:
    """Start recording every process of ``service`` (both formats); returns the recorders."""
    procs = []
    for pid in pids(service)[:1]:
        name = f"profile-{service}{tag}"
        for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
            procs.append(
                subprocess.Popen(
                    [
                        *PYSPY,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(duration_s),
                        "--format",
                        fmt,
                        "-o",
                        str(RESULTS / f"{name}.{ext}"),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=ROOT,
                )
            )
    return procs


def wait(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        try:
            p.wait(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks → the top functions by self and by inclusive samples."""
    if not path.exists():
        return {"error": f"no {path.name}"}
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[_short(frames[-1])] += n
        for f in {_short(x) for x in frames}:
            incl[f] += n
        for f in {
            _short(x) for x in frames if any(p in x for p in OUR_PACKAGES) and "__main__" not in x
        }:
            ours[f] += n
    return {
        "samples": total,
        "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)],
        "inclusive": [(f, round(100 * n / total, 1)) for f, n in incl.most_common(top * 2)],
        # Our own functions (the framework's frames wrap everything and say little).
        "ours": [(f, round(100 * n / total, 1)) for f, n in ours.most_common(top)],
    }


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" → "func (module.py)"
    name, _, where = frame.partition(" (")
    file = where.rsplit("/", 1)[-1].split(":")[0]
    return f"{name} ({file})"


def busiest(services: list[str], window: dict[str, float]) -> str:
    """The service that used the most CPU since ``window`` (pid → cpu seconds) was taken."""
    best, most = services[0], -1.0
    for s in services:
        used = sum(cpu_seconds(p) - window.get(str(p), 0.0) for p in pids(s))
        if used > most:
            best, most = s, used
    return best


def cpu_snapshot(services: list[str]) -> dict[str, float]:
    return {str(p): cpu_seconds(p) for s in services for p in pids(s)}
