"""Two-phase transfers (hold, then post) per second on PostgreSQL — billing-svc's own ledger code
(services/billing-svc/bench/ledger_bench.py's pair and funding), with three contention levels
(every worker its own wallet, a few (4) wallets shared, one wallet for all) and two paths:

- per transfer: each pair is two transactions, ``create_transfer(hold)`` then
  ``create_transfer(post)``;
- batched: each worker's round is two transactions, ``create_transfers`` of ``--batch`` holds,
  then ``create_transfers`` of their posts.

transfers/s counts holds and posts, committed, in both.

    python bench/ledger.py [--pairs 800] [--batched-pairs 32768] [--batch 128] [--workers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
import uuid

from common import ROOT, SMOKE, create_database, drop_database, load, write_result

_spec = importlib.util.spec_from_file_location(
    "ledger_bench", ROOT / "services" / "billing-svc" / "bench" / "ledger_bench.py"
)
assert _spec and _spec.loader
lb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lb)


async def _run(db: object, pairs: int, workers: int, wallets: int, batch: int) -> float:
    """Pairs per second; ``batch`` 0 = per transfer, else pairs per batched round."""
    funded = [await lb._fund(db, uuid.uuid4()) for _ in range(wallets)]
    per_worker = pairs // workers
    if batch:
        per_worker -= per_worker % batch

    async def worker(i: int) -> None:
        if batch:
            for _ in range(per_worker // batch):
                await lb._batched_pairs(db, *funded[i % wallets], batch)
            return
        for _ in range(per_worker):
            await lb._pair(db, *funded[i % wallets])

    t, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    done = per_worker * workers
    _run.client_cpu_ms_per_pair = 1000 * (time.process_time() - cpu) / done  # type: ignore[attr-defined]
    return done / (time.perf_counter() - t)


async def main_async(pairs: int, batched_pairs: int, batch: int, workers: int) -> dict:
    from billing_svc.app import MIGRATIONS
    from plugpay_platform.database import Database
    from plugpay_platform.migrations import upgrade_to_head

    name = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    out = []
    try:
        await upgrade_to_head(MIGRATIONS, url)
        db = Database(url, pool_size=workers)
        for path, n, size in (
            ("per transfer", pairs, 0),
            (f"batches of {batch}", batched_pairs, batch),
        ):
            for label, wallets in (
                ("own wallet per worker", workers),
                ("4 shared wallets", 4),
                ("one wallet", 1),
            ):
                rate = await _run(db, n, workers, wallets, size)
                out.append(
                    {
                        "accounts": f"{label}, {path}",
                        "path": path,
                        "batch": size or 1,
                        "wallets": wallets,
                        "workers": workers,
                        "pairs_per_s": round(rate),
                        "transfers_per_s": round(2 * rate),
                        # CPU this (client) process spent per pair: what a free core would allow.
                        "client_cpu_ms_per_pair": round(_run.client_cpu_ms_per_pair, 3),
                        "load": load(),
                    }
                )
                print(out[-1])
        await db.dispose()
    finally:
        await drop_database(name)
    return {
        "pairs": pairs,
        "batched_pairs": batched_pairs,
        "batch": batch,
        "runs": out,
        "method": "per transfer: each pair = 2 transactions (PENDING hold, POST capture) through "
        "billing_svc.repository.LedgerRepository.create_transfer; batched: each round = 2 "
        "transactions (create_transfers of `batch` holds, then of their posts); transfers/s "
        "counts holds and posts",
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=160 if SMOKE else 800)
    p.add_argument("--batched-pairs", type=int, default=4096 if SMOKE else 32768)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=16)
    a = p.parse_args()
    before = load()
    result = asyncio.run(main_async(a.pairs, a.batched_pairs, a.batch, a.workers))
    write_result("ledger", result, before)


if __name__ == "__main__":
    main()
