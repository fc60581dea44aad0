"""The chaos run: many stations and drivers charging while a controller kills things.

Faults: SIGKILL of every service process at random moments (several rounds), each restarted by
re-running ``scripts/stack.sh up`` for the isolated instance (it restarts only dead processes);
dropped station connections (the station reconnects and re-sends what was not acknowledged, as
a real charger's transaction queue does); one Kafka broker restart and one PostgreSQL restart
(only with ``CI`` set or PLUGPAY_CHAOS_INFRA=1: they are shared by everyone on a dev machine).
Afterwards ``check_invariants`` reads every service's database and the event log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import support
from ocpp.v16 import call as call16
from plugpay_simulator.stations import SimulatedStation, now_iso

TERMINAL = {"billed", "denied", "expired", "abandoned", "failed"}


def infra_faults_enabled() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("PLUGPAY_CHAOS_INFRA") == "1"


@dataclass
class Report:
    sessions_started: int = 0  # codes issued to our stations (session ids we learned)
    scans_accepted: int = 0
    charging_transactions: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    fault_log: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    scan_refusals: dict[str, int] = field(default_factory=dict)
    code_refusals: dict[str, int] = field(default_factory=dict)
    stop_reasons: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    settle_seconds: float = 0.0

    def fault(self, kind: str, what: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        self.fault_log.append(f"{time.strftime('%H:%M:%S')} {kind} {what}")

    def summary(self) -> dict[str, Any]:
        return {
            "sessions": sum(self.statuses.values()),
            "statuses": self.statuses,
            "scans_accepted": self.scans_accepted,
            "seed": self.seed,
            "scan_refusals": self.scan_refusals,
            "code_refusals": self.code_refusals,
            "stop_reasons": self.stop_reasons,
            "charging_transactions": self.charging_transactions,
            "faults": self.faults,
            "violations": len(self.violations),
            "violation_list": self.violations[:50],
            "seconds": round(self.seconds, 1),
            "settle_seconds": round(self.settle_seconds, 1),
        }


class ChaosStation:
    """A simulated station that survives its connection dropping: reconnects and retries."""

    def __init__(self, station_id: str, report: Report) -> None:
        ws_base = support.BASE_URL.replace("http://", "ws://")
        self.sim = SimulatedStation(
            station_id,
            ws_base,
            support.STATION_PASSWORD,
            meter_interval_s=0.5,
            energy_speedup=support.METER_SPEEDUP,
        )
        self.report = report
        self.connected = False

    async def ensure(self, deadline: float) -> None:
        while not self.connected:
            try:
                await asyncio.wait_for(self.sim.connect(), 15)
                self.connected = True
            except Exception:
                with contextlib.suppress(Exception):
                    await self.sim.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)

    async def revive(self, deadline: float) -> None:
        """Reconnect if the back office closed the link (a real charger notices and redials;
        on reconnecting it re-sends the StartTransaction nobody answered)."""
        ws = self.sim._ws
        if self.connected and (ws is None or ws.close_code is not None):
            await self.drop()
        await self.ensure(deadline)

    async def drop(self) -> None:
        """The station loses its network (no closing handshake)."""
        self.connected = False
        ws = self.sim._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sim.close(), 20)

    async def call(self, fn: Any, *, deadline: float) -> Any:
        """Run one station→back-office call, reconnecting and retrying until acknowledged."""
        while True:
            await self.ensure(deadline)
            try:
                return await asyncio.wait_for(fn(), 12)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await self.drop()
                await asyncio.sleep(0.5)

    async def stop_transaction(self, deadline: float) -> None:
        tx = self.sim.transactions.get(1)
        if tx is None or tx.stop_reason is not None:
            return
        tx.stopped.set()
        meter_stop = tx.meter_wh
        stamp = now_iso()

        async def send() -> None:
            # suppress=False: a CallError (e.g. InternalError while PostgreSQL restarts) means
            # the stop was not taken — a real charger retries a transaction message then.
            await self.sim._cp.call(
                call16.StopTransaction(
                    meter_stop=meter_stop,
                    timestamp=stamp,
                    transaction_id=int(tx.transaction_id),
                    reason="EVDisconnected",
                ),
                suppress=False,
            )

        await self.call(send, deadline=deadline)
        tx.stop_reason = "EVDisconnected"
        tx.ended.set()


async def request_code(station: ChaosStation, report: Report, deadline: float) -> Any:
    """A code for connector 1, or None if the back office refused one (the refusal counted):
    a refusal is an answer, not a broken link, so the station keeps its connection."""

    async def ask() -> Any:
        try:
            return await station.sim.request_code(1)
        except RuntimeError as refused:  # the DataTransfer was answered Rejected
            text = str(refused)
            reason = next(
                (r for r in ("connector_busy", "temporarily_unavailable") if r in text), "other"
            )
            report.code_refusals[reason] = report.code_refusals.get(reason, 0) + 1
            return None

    return await station.call(ask, deadline=deadline)


async def _session_status(http: httpx.AsyncClient, token: str, sid: str) -> str | None:
    with contextlib.suppress(Exception):
        r = await http.get(f"/sessions/{sid}", headers=support.bearer(token))
        if r.status_code == 200:
            return str(r.json().get("status"))
    return None


async def station_worker(
    station: ChaosStation,
    driver: support.Driver,
    sessions: int,
    report: Report,
    session_ids: set[str],
    deadline: float,
    faults_done: asyncio.Event,
    seed: int,
) -> None:
    """At least ``sessions`` sessions, and more until every fault was injected (by the
    deadline): the faults must hit traffic, however fast the sessions go."""
    rng = random.Random(f"{seed}:{station.sim.station_id}")
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=10) as http:
        done = 0
        while done < sessions or not faults_done.is_set():
            done += 1
            if time.monotonic() > deadline:
                return
            # A start that arrived after we stopped waiting for it: the driver unplugs.
            with contextlib.suppress(Exception):
                await station.stop_transaction(deadline + 60)
            try:
                reply = await request_code(station, report, deadline)
            except Exception:
                continue
            if reply is None:  # e.g. connector_busy while a late start is on its way
                await asyncio.sleep(1.0)
                continue
            sid = str(reply["sessionId"])
            session_ids.add(sid)
            report.sessions_started += 1
            # A few codes are never scanned: the code-expiry timer must finish them.
            if rng.random() < 0.05:
                continue
            before = station.sim.transactions.get(1)
            scanned = False
            give_up = time.monotonic() + 20
            while time.monotonic() < deadline and not scanned:
                try:
                    r = await http.post(
                        "/sessions/scan",
                        json={"code": reply["qr"]},
                        headers=support.bearer(driver.token),
                    )
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)
                    continue
                if r.status_code == 202 or (
                    r.status_code == 409 and r.json().get("reason") == "code_used"
                ):
                    scanned = True
                elif (
                    r.status_code >= 500
                    or r.status_code == 404
                    or (r.status_code == 409 and r.json().get("reason") == "station_offline")
                ):
                    await asyncio.sleep(0.5)  # a service restarting / catching up
                else:
                    reason = f"{r.status_code}:{r.json().get('reason')}"
                    report.scan_refusals[reason] = report.scan_refusals.get(reason, 0) + 1
                    if r.status_code in (401, 403) or time.monotonic() > give_up:
                        break  # refused for good
                    await asyncio.sleep(0.5)  # e.g. session-svc has not learned the code yet
            if not scanned:
                continue
            report.scans_accepted += 1
            # Wait until the station was told to start, or the session ended without starting.
            started = None
            wait_until = min(deadline, time.monotonic() + 60)
            while time.monotonic() < wait_until:
                tx = station.sim.transactions.get(1)
                # A transaction the station opened counts even if reporting "Charging" failed.
                if tx is not None and tx is not before:
                    started = tx
                    break
                with contextlib.suppress(Exception):
                    await station.revive(deadline)
                if (
                    rng.random() < 0.2
                    and await _session_status(http, driver.token, sid) in TERMINAL
                ):
                    break
                await asyncio.sleep(0.2)
            if started is None:
                continue
            with contextlib.suppress(Exception):
                await asyncio.wait_for(started.started.wait(), 5)
            report.charging_transactions += 1
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            with contextlib.suppress(Exception):
                await station.stop_transaction(deadline + 60)
            with contextlib.suppress(Exception):
                await station.call(
                    lambda: station.sim.set_status(1, "Available"), deadline=deadline
                )


async def finish_open_transactions(station: ChaosStation) -> None:
    with contextlib.suppress(Exception):
        await station.stop_transaction(time.monotonic() + 120)


async def kill_process(name: str, report: Report) -> bool:
    pidfile = support.pid_files().get(name)
    if pidfile is None:
        return False
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, ValueError):
        return False
    report.fault("sigkill", name)
    return True


async def restart_dead() -> None:
    await asyncio.to_thread(support.stack_up)


def _infra(cmd: list[str]) -> None:
    subprocess.run(
        cmd,
        cwd=support.ROOT,
        check=True,
        timeout=240,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # By this point of `make test` the broker holds every suite's topics (thousands of
        # partitions); on a loaded machine it has taken over the default 90 s to be ready.
        env={**os.environ, "PLUGPAY_KAFKA_READY_TIMEOUT": "200"},
    )


async def restart_kafka(report: Report) -> None:
    report.fault("kafka_restart", "broker")
    await asyncio.to_thread(_infra, ["bash", "deploy/local/kafka.sh", "down"])
    await asyncio.sleep(3)
    await asyncio.to_thread(_infra, ["bash", "deploy/local/kafka.sh", "up"])


async def restart_postgres(report: Report) -> None:
    report.fault("postgres_restart", "server")
    py = str(support.ROOT / ".venv" / "bin" / "python")
    await asyncio.to_thread(_infra, [py, "deploy/local/postgres.py", "down"])
    await asyncio.sleep(3)
    await asyncio.to_thread(_infra, [py, "deploy/local/postgres.py", "up"])


def _pids() -> dict[str, int]:
    out = {}
    for name, path in support.pid_files().items():
        with contextlib.suppress(OSError, ValueError):
            out[name] = int(path.read_text())
    return out


async def controller(
    stations: list[ChaosStation],
    report: Report,
    *,
    rounds: int,
    stop: asyncio.Event,
    infra: bool,
    seed: int,
) -> None:
    """Each round kills every service process once, each at its own random moment within a few
    seconds (so several are down together), drops station connections meanwhile, then re-runs
    ``stack.sh up`` and checks it restarted exactly the dead processes."""
    rng = random.Random(seed)
    names = sorted(n for n in support.pid_files() if not n.startswith("nginx"))
    # Kafka in the middle, PostgreSQL in the last round (both, in that order, if only one).
    infra_rounds: dict[int, list[str]] = {}
    if infra:
        infra_rounds.setdefault(max(0, rounds // 2 - 1), []).append("kafka")
        infra_rounds.setdefault(rounds - 1, []).append("postgres")
    for round_no in range(rounds):
        if stop.is_set():
            return
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        victims = rng.sample(names, k=len(names))  # every process, random order
        before = _pids()

        async def kill_later(name: str) -> None:
            await asyncio.sleep(rng.uniform(0.0, 6.0))
            await kill_process(name, report)

        async def drops() -> None:
            for _ in range(3):
                await asyncio.sleep(rng.uniform(0.5, 2.5))
                for station in rng.sample(stations, k=max(1, len(stations) // 5)):
                    report.fault("station_drop", station.sim.station_id)
                    await station.drop()

        await asyncio.gather(*(kill_later(n) for n in victims), drops())
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        survivors = {n: p for n, p in before.items() if n not in victims}
        await restart_dead()
        after = _pids()
        for name, pid in survivors.items():
            if after.get(name) != pid:
                report.violations.append(f"stack.sh up restarted a live process {name}")
        for name in victims:
            if after.get(name) == before.get(name):
                report.violations.append(f"stack.sh up did not restart {name}")
        kinds = infra_rounds.get(round_no, [])
        for kind in kinds:
            await (restart_kafka if kind == "kafka" else restart_postgres)(report)
        if kinds:
            await restart_dead()


# --- checks --------------------------------------------------------------------------------


async def session_rows(stations: list[str]) -> list[dict[str, Any]]:
    return await support.query(
        f"sessions_{support.STACK_NAME}",
        "SELECT session_id::text AS sid, status, station_id FROM sessions"
        " WHERE station_id = ANY($1::text[])",
        stations,
    )


async def wait_terminal(stations: list[str], timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await session_rows(stations)
        open_ = [r for r in rows if r["status"] not in TERMINAL]
        if not open_ or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(2)


async def check_invariants(
    world: support.World, report: Report, session_ids: set[str], *, settle_s: float
) -> None:
    stations = world.stations
    t0 = time.monotonic()
    rows = await wait_terminal(stations, settle_s)
    report.settle_seconds = time.monotonic() - t0
    known = {r["sid"] for r in rows}
    for r in rows:
        report.statuses[r["status"]] = report.statuses.get(r["status"], 0) + 1
        if r["status"] not in TERMINAL:
            report.violations.append(f"session {r['sid']} not terminal: {r['status']}")
    for sid in sorted(session_ids - known):
        report.violations.append(f"session {sid} issued to a station but unknown to session-svc")
    gdb = f"station_gateway_{support.STACK_NAME}"
    bdb = f"billing_{support.STACK_NAME}"
    # Every completed charging transaction is billed exactly once.
    completed = await support.query(
        gdb,
        "SELECT session_id::text AS sid, stop_reason FROM sessions"
        " WHERE station_id = ANY($1::text[])"
        " AND transaction_id IS NOT NULL AND completed_at IS NOT NULL",
        stations,
    )
    for c in completed:
        reason = str(c["stop_reason"])
        report.stop_reasons[reason] = report.stop_reasons.get(reason, 0) + 1
    receipts = await support.query(
        bdb,
        "SELECT session_id::text AS sid, count(*) AS n FROM receipts"
        " WHERE station_id = ANY($1::text[]) GROUP BY session_id",
        stations,
    )
    per_session = {r["sid"]: r["n"] for r in receipts}
    status_of = {r["sid"]: r["status"] for r in rows}
    for c in completed:
        n = per_session.get(c["sid"], 0)
        if n != 1:
            report.violations.append(f"completed transaction {c['sid']} has {n} receipts")
        if status_of.get(c["sid"]) != "billed":
            report.violations.append(
                f"completed transaction {c['sid']} is {status_of.get(c['sid'])} in session-svc"
            )
    completed_ids = {c["sid"] for c in completed}
    for sid in per_session:
        if sid not in completed_ids:
            report.violations.append(f"receipt for {sid} without a completed transaction")
    # Each session's settlement account nets to zero (hold posted once, split out once).
    unsettled = await support.query(
        bdb,
        "SELECT code, debits_posted, credits_posted, debits_pending, credits_pending"
        " FROM accounts WHERE kind = 'session_settlement' AND owner_id::text = ANY($1::text[])"
        " AND (debits_posted <> credits_posted OR credits_pending <> 0 OR debits_pending <> 0)",
        sorted(completed_ids),
    )
    for u in unsettled:
        report.violations.append(f"settlement not netted: {u}")
    # Debits equal credits (whole ledger, pending and posted).
    sums = (
        await support.query(
            bdb,
            "SELECT coalesce(sum(debits_posted),0)::bigint AS dp,"
            " coalesce(sum(credits_posted),0)::bigint AS cp,"
            " coalesce(sum(debits_pending),0)::bigint AS dpe,"
            " coalesce(sum(credits_pending),0)::bigint AS cpe FROM accounts",
        )
    )[0]
    if sums["dp"] != sums["cp"] or sums["dpe"] != sums["cpe"]:
        report.violations.append(f"ledger unbalanced: {sums}")
    report.ledger = sums  # type: ignore[attr-defined]
    # No wallet negative.
    negative = await support.query(
        bdb,
        "SELECT code, debits_pending, debits_posted, credits_posted FROM accounts"
        " WHERE kind = 'wallet' AND debits_pending + debits_posted > credits_posted",
    )
    for n in negative:
        report.violations.append(f"wallet negative: {n}")
    # No hold open past its timeout, and none open for a session that has ended.
    open_holds = await support.query(
        bdb,
        "SELECT p.id::text AS id, p.expires_at, bs.session_id::text AS sid FROM transfers p"
        " LEFT JOIN billing_sessions bs ON bs.hold_transfer_id = p.id"
        " WHERE p.kind = 'pending'"
        " AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = p.id)",
    )
    now = datetime.now(UTC)
    for h in open_holds:
        if h["expires_at"] is not None and h["expires_at"] < now:
            report.violations.append(f"hold {h['id']} open past its timeout")
        elif h["sid"] is not None and status_of.get(h["sid"]) in TERMINAL:
            report.violations.append(f"hold {h['id']} open for ended session {h['sid']}")
    # The session store rebuilt from the log equals the live one.
    for problem in await rebuilt_store_differences(stations):
        report.violations.append(problem)


async def rebuilt_store_differences(stations: list[str]) -> list[str]:
    """Replay the topics into a scratch database with ``session-svc rebuild``; compare."""
    import asyncpg

    name = f"sessions_{support.STACK_NAME}_rebuild"
    conn = await asyncpg.connect(f"{support.PG_ROOT}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    pid = int(support.pid_files()["session-svc-" + str(support.PORT_BASE + 3)].read_text())
    env = dict(
        line.split("=", 1)
        for line in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")  # noqa: ASYNC240
        if "=" in line
    )
    env["SESSION_SVC_DATABASE_URL"] = f"postgresql+asyncpg://plugpay:plugpay@127.0.0.1:5433/{name}"
    env["PLUGPAY_INSTANCE_ID"] = f"rebuild-{uuid.uuid4().hex[:6]}"
    exe = str(support.ROOT / ".venv" / "bin" / "session-svc")
    done = await asyncio.to_thread(
        subprocess.run,
        [exe, "rebuild"],
        env=env,
        check=False,
        timeout=600,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        return [f"rebuild failed: {done.stderr[-2000:]}"]
    sql = (
        "SELECT session_id::text AS sid, status, station_id, connector_id, user_id::text AS u,"
        " code, state::text AS state FROM sessions WHERE station_id = ANY($1::text[])"
    )
    live = {
        r["sid"]: r for r in await support.query(f"sessions_{support.STACK_NAME}", sql, stations)
    }
    rebuilt = {r["sid"]: r for r in await support.query(name, sql, stations)}
    problems = []
    for sid in sorted(set(live) | set(rebuilt)):
        a, b = live.get(sid), rebuilt.get(sid)
        if a is None or b is None:
            problems.append(f"rebuild: session {sid} only in {'rebuilt' if a is None else 'live'}")
            continue
        if {k: v for k, v in a.items() if k != "state"} != {
            k: v for k, v in b.items() if k != "state"
        }:
            problems.append(
                f"rebuild: session {sid} differs: live {a['status']} rebuilt {b['status']}"
            )
        elif _norm_state(a["state"]) != _norm_state(b["state"]):
            problems.append(f"rebuild: session {sid} state differs")
    return problems


def _norm_state(state: str | None) -> Any:
    return json.loads(state) if state else None
