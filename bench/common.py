"""Shared by every benchmark: machine facts, percentiles, results files, the bench stack's settings.

Results are JSON in bench/results/<name>.json, each with the machine it ran on and the load
average before and after (the machine is shared; a noisy neighbour shows there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STACK_NAME = os.environ.get("BENCH_STACK_NAME", "bench")
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "8300"))
BASE_URL = f"http://127.0.0.1:{PORT_BASE - 20}"
STATE = ROOT / ".local" / f"stack-{STACK_NAME}"
KAFKA = os.environ.get("PLUGPAY_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PG = os.environ.get("BENCH_PG", "postgresql://plugpay:plugpay@127.0.0.1:5433")
TOPIC_PREFIX = f"{STACK_NAME}."
SMOKE = os.environ.get("BENCH_SMOKE") == "1"


def raise_nofile(want: int = 65_536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _version(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()[:120]
    except Exception:
        return None


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pkgs = {}
    for name in (
        "ocpp",
        "websockets",
        "httpx",
        "aiokafka",
        "asyncpg",
        "sqlalchemy",
        "fastapi",
        "uvicorn",
        "pydantic",
        "orjson",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            pkgs[name] = metadata.version(name)
    kafka_jar = sorted((ROOT / ".local").glob("**/kafka_*.jar"))
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "postgresql": _version(["bash", "-c", "psql --version 2>/dev/null || echo"]) or None,
        "kafka_jar": kafka_jar[0].name if kafka_jar else None,
        "git_commit": _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "packages": pkgs,
    }


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    s = sorted(values)

    def p(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))], 2)

    return {"n": len(s), "p50": p(0.50), "p95": p(0.95), "p99": p(0.99), "max": round(s[-1], 2)}


def database_url(name: str) -> str:
    """The SQLAlchemy (asyncpg) URL of database ``name`` on the benchmark's PostgreSQL."""
    return f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"


async def _on_server(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def commits(databases: dict[str, str]) -> dict[str, int]:
    """Transactions committed so far in each database of ``{service: database}`` (the bench
    stack's, ``<database>_<stack>``), from ``pg_stat_database``: PostgreSQL flushes a busy
    backend's counters about once a second, so a difference over a window of tens of seconds
    is right to a few per cent."""
    import asyncpg

    async def read() -> dict[str, int]:
        conn = await asyncpg.connect(f"{PG}/postgres")
        try:
            rows = await conn.fetch(
                "SELECT datname, xact_commit FROM pg_stat_database WHERE datname = ANY($1)",
                [f"{db}_{STACK_NAME}" for db in databases.values()],
            )
        finally:
            await conn.close()
        by_name = {row["datname"]: int(row["xact_commit"]) for row in rows}
        return {svc: by_name.get(f"{db}_{STACK_NAME}", 0) for svc, db in databases.items()}

    return asyncio.run(read())


async def create_database(name: str) -> str:
    """An empty database ``name`` (one a killed run left behind is dropped first); its URL."""
    await _on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return database_url(name)


async def drop_database(name: str) -> None:
    """Drop database ``name`` if it exists, closing whatever is still connected to it."""
    await _on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_result(name: str, data: dict[str, Any], load_before: list[float]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    body = {
        "benchmark": name,
        "smoke": SMOKE,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_before": load_before,
        "load_after": load(),
        **data,
    }
    suffix = "-smoke" if SMOKE else ""
    path = RESULTS / f"{name}{suffix}.json"
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
    print(f"bench: wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return path


def pids(service: str) -> list[int]:
    out = []
    for f in sorted(STATE.glob(f"{service}-*.pid")):
        with contextlib.suppress(ValueError):
            out.append(int(f.read_text().strip()))
    return out


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def infrastructure_cpu_seconds() -> dict[str, float]:
    """CPU seconds the local PostgreSQL (the postmaster, its live backends and those that have
    exited) and Kafka have used so far; {} for a server not started by deploy/local/infra.sh."""
    used: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int((ROOT / ".local/postgres/data/postmaster.pid").read_text().split()[0])
        total = cpu_seconds(postmaster, reaped_children=True)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    total += cpu_seconds(int(stat.parent.name))
        used["postgresql"] = total
    with contextlib.suppress(OSError, ValueError):
        used["kafka"] = cpu_seconds(int((ROOT / ".local/kafka/kafka.pid").read_text().strip()))
    return used


def time_plot(name: str, title: str, draw: Callable[[Any, Any], None]) -> str | None:
    """Latency above, throughput below, over one time axis, drawn by ``draw(top, bottom)`` and
    saved as bench/results/<name> (PNG); None where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    draw(top, bottom)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(RESULTS / name, dpi=90)
    plt.close(fig)
    return f"bench/results/{name}"


def headline(result: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Print a step's headline figures on stderr while the benchmark runs (the whole result
    goes to its results file)."""
    print(json.dumps({k: result[k] for k in keys}), file=sys.stderr)


def client_process(main: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    """A load-generating child process: many sockets (a raised file limit), one event loop."""
    raise_nofile(65_536)
    asyncio.run(main(*args))


class StationClients:
    """Child processes that each hold a share of the simulated stations: each runs
    ``main(ids, password, commands, replies)``, takes commands on its queue in ``cmds`` and
    answers on its queue in ``outs``; ``("stop",)`` ends it (connections.py, messages.py)."""

    def __init__(
        self,
        main: Callable[..., Coroutine[Any, Any, None]],
        ids: list[str],
        password: str,
        count: int,
    ) -> None:
        ctx = mp.get_context("spawn")
        self.cmds = [ctx.Queue() for _ in range(count)]
        self.outs = [ctx.Queue() for _ in range(count)]
        self.procs = [
            ctx.Process(
                target=client_process,
                args=(main, ids[i::count], password, self.cmds[i], self.outs[i]),
                daemon=True,
            )
            for i in range(count)
        ]
        for process in self.procs:
            process.start()

    def stop(self) -> None:
        for commands in self.cmds:
            commands.put(("stop",))
        for replies, process in zip(self.outs, self.procs, strict=True):
            with contextlib.suppress(Exception):
                replies.get(timeout=60)
            process.join(10)
            if process.is_alive():
                process.kill()
