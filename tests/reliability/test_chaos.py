"""Chaos run on the isolated distributed stack (docs/reliability.md).

Short variant (default): ~80 sessions on 16 stations, two kill rounds (12 SIGKILLs).
Long (``--long`` or PLUGPAY_LONG=1): ~400 sessions on 40 stations, six rounds.
Kafka and PostgreSQL restarts only with ``CI`` set or PLUGPAY_CHAOS_INFRA=1 (they are shared
infrastructure on a dev machine).
"""

from __future__ import annotations

import asyncio
import json
import time

import chaos
import pytest
import support

RESULTS = support.ROOT / ".local" / "reliability"


async def test_chaos_run(stack: str, long_run: bool, chaos_seed: int) -> None:
    stations_n, per_station, rounds, budget_s = (40, 10, 6, 600) if long_run else (16, 5, 2, 170)
    # 500 EUR is the wallet's maximum; the drivers' card pays once it runs low
    world = await support.build_world(stations=stations_n, drivers=stations_n, fund_minor=50_000)
    report = chaos.Report(seed=chaos_seed)
    print(f"chaos seed {chaos_seed} (replay: --chaos-seed {chaos_seed})")
    stations = [chaos.ChaosStation(s, report) for s in world.stations]
    session_ids: set[str] = set()
    start = time.monotonic()
    deadline = start + budget_s
    stop = asyncio.Event()
    infra = chaos.infra_faults_enabled()
    control = asyncio.create_task(
        chaos.controller(stations, report, rounds=rounds, stop=stop, infra=infra, seed=chaos_seed)
    )
    faults_done = asyncio.Event()
    control.add_done_callback(lambda _: faults_done.set())
    workers = [
        chaos.station_worker(
            st, d, per_station, report, session_ids, deadline, faults_done, chaos_seed
        )
        for st, d in zip(stations, world.drivers, strict=True)
    ]
    # A hung step fails the run with its seed instead of holding CI until its time limit.
    try:
        async with asyncio.timeout(budget_s + 600):
            await asyncio.gather(*workers, return_exceptions=True)
            await control  # every round, even if the budget ran out first (then no traffic)
    except TimeoutError:
        pytest.fail(f"chaos run hung; seed {chaos_seed}; faults so far: {report.fault_log}")
    await chaos.restart_dead()
    await asyncio.gather(*(chaos.finish_open_transactions(st) for st in stations))
    report.seconds = time.monotonic() - start
    for st in stations:
        await st.drop()
    await chaos.check_invariants(world, report, session_ids, settle_s=300 if long_run else 120)
    summary = report.summary()
    summary["variant"] = "long" if long_run else "short"
    summary["infra_faults"] = infra
    summary["fault_log"] = report.fault_log
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"chaos-{summary['variant']}.json").write_text(
        json.dumps(summary, indent=2, default=str)
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "fault_log"}, indent=2, default=str))
    replay = f"seed {chaos_seed} (replay: --chaos-seed {chaos_seed})"
    assert summary["sessions"] >= (300 if long_run else 60), (replay, summary)
    if infra:
        assert report.faults.get("kafka_restart") == 1, (replay, report.faults)
        assert report.faults.get("postgres_restart") == 1, (replay, report.faults)
    assert not report.violations, (replay, report.violations[:20])
