"""Run session-svc: ``session-svc`` (the server) or ``session-svc rebuild`` (the store).

Settings come from the environment (``SESSION_SVC_*``, ``PLUGPAY_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os

from plugpay_platform.logging import configure_logging
from plugpay_platform.server import serve


def rebuild() -> None:
    from session_svc.rebuild import run_rebuild
    from session_svc.settings import Settings

    # No cyclic collection for the command's life (the replay pauses it anyway), and what is
    # alive at the end is frozen: the exit's collection would walk a whole log of objects.
    gc.disable()
    progress = asyncio.run(run_rebuild(Settings()))  # type: ignore[call-arg]
    gc.freeze()
    print(progress.line())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="session-svc", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server and consumers (the default)")
    commands.add_parser(
        "rebuild", help="drop the session store and replay the topics from offset 0"
    )
    args = parser.parse_args(argv)
    if args.command == "rebuild":
        configure_logging("session-svc", level=os.environ.get("PLUGPAY_LOG_LEVEL", "INFO"))
        rebuild()
    else:
        serve("session-svc", "session_svc.app:create_app", env_prefix="SESSION_SVC_")


if __name__ == "__main__":
    main()
