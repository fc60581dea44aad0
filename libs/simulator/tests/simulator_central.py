"""What every central system the simulator's tests run does alike, on the `ocpp` library (its
server side validates every message against the OCPP JSON schemas): accept the boot, answer
heartbeats, serve on a free local port. Each test file records what it checks in its own
``Seen`` (module name unique)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import websockets
from ocpp.routing import on
from websockets.typing import Subprotocol

PASSWORD = "simulated-station-pw-1"


def now() -> str:
    return datetime.now(UTC).isoformat()


class Accepting:
    """Mixed in before an ``ocpp`` ChargePoint class; ``results`` is that version's
    ``call_result`` module, ``seen`` what the test records."""

    results: ModuleType

    def __init__(self, station_id: str, connection: Any, seen: Any) -> None:
        super().__init__(station_id, connection)
        self.seen = seen

    def boot_accepted(self) -> Any:
        return self.results.BootNotification(current_time=now(), interval=300, status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self) -> Any:
        return self.results.Heartbeat(current_time=now())


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[Any], Awaitable[None]], subprotocols: list[str]
) -> AsyncIterator[str]:
    """``handler`` serving websockets on a free local port; yields the URL."""
    offered = [Subprotocol(name) for name in subprotocols]
    server = await websockets.serve(handler, "127.0.0.1", 0, subprotocols=offered)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
