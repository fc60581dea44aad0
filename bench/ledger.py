"""Two-phase transfers (hold, then post) per second on PostgreSQL — billing-svc's own ledger code
(services/billing-svc/bench/ledger_bench.py's pair and funding), here with three contention
levels: every worker its own wallet, a few (4) wallets shared, and one wallet for all.

    python bench/ledger.py [--pairs 4000] [--workers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
import uuid

from common import PG, ROOT, SMOKE, load, write_result

_spec = importlib.util.spec_from_file_location(
    "ledger_bench", ROOT / "services" / "billing-svc" / "bench" / "ledger_bench.py"
)
assert _spec and _spec.loader
lb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lb)


async def _run(db: object, pairs: int, workers: int, wallets: int) -> float:
    funded = [await lb._fund(db, uuid.uuid4()) for _ in range(wallets)]
    per_worker = pairs // workers

    async def worker(i: int) -> None:
        for _ in range(per_worker):
            await lb._pair(db, *funded[i % wallets])

    t, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    done = per_worker * workers
    _run.client_cpu_ms_per_pair = 1000 * (time.process_time() - cpu) / done  # type: ignore[attr-defined]
    return done / (time.perf_counter() - t)


async def main_async(pairs: int, workers: int) -> dict:
    import asyncpg
    from billing_svc.app import MIGRATIONS
    from plugpay_platform.database import Database
    from plugpay_platform.migrations import upgrade_to_head

    name = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(f"{PG}/postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    out = []
    try:
        await upgrade_to_head(MIGRATIONS, url)
        db = Database(url, pool_size=workers)
        for label, wallets in (
            ("own wallet per worker", workers),
            ("4 shared wallets", 4),
            ("one wallet", 1),
        ):
            rate = await _run(db, pairs, workers, wallets)
            out.append(
                {
                    "accounts": label,
                    "wallets": wallets,
                    "workers": workers,
                    "pairs_per_s": round(rate),
                    "transfers_per_s": round(2 * rate),
                    # CPU this (client) process spent per pair: what a free core would allow.
                    "client_cpu_ms_per_pair": round(_run.client_cpu_ms_per_pair, 2),
                    "load": load(),
                }
            )
            print(out[-1])
        await db.dispose()
    finally:
        conn = await asyncpg.connect(f"{PG}/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
    return {
        "pairs": pairs,
        "runs": out,
        "method": "each pair = 2 transactions (PENDING hold, POST capture) through "
        "billing_svc.repository.LedgerRepository; transfers/s counts both",
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=160 if SMOKE else 800)
    p.add_argument("--workers", type=int, default=16)
    a = p.parse_args()
    before = load()
    write_result("ledger", asyncio.run(main_async(a.pairs, a.workers)), before)


if __name__ == "__main__":
    main()
