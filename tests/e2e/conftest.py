"""End-to-end tests of the whole product, in each of its shapes.

- ``distributed``: ``scripts/stack.sh up`` (each service its own uvicorn process, Kafka,
  PostgreSQL, nginx on :8080; idempotent, reused when running);
- ``embedded``: ``plugpay run`` as a subprocess on a free port with a temporary data folder,
  stopped with Ctrl-C (SIGINT) at the end, which must exit 0;
- ``compose``: the images on Docker Compose (``deploy/compose/compose.sh up``, idempotent; nginx
  on :8680), only when asked for: ``PLUGPAY_E2E_MODES=compose`` (``make images`` first).

Every test makes its own data through the public APIs (drivers, money, cards, stations,
tariffs), so tests are independent and repeatable on a long-lived stack. After every test the
invariants are checked (``World.check_invariants``): every session it touched is terminal, each
billed at most once in the event log, the ledger balances, no hold left open.

``PLUGPAY_E2E_MODES=distributed`` (or ``embedded``, ``compose``) runs one mode.
``multi_process`` tests need several processes (two gateways): distributed and compose;
``distributed_only`` tests use the host's stack itself (its venv, its secrets).
``PLUGPAY_E2E_STACK=e2e PLUGPAY_E2E_PORT_BASE=8900`` runs the distributed mode on an isolated
stack of this checkout (stopped at the end) instead of the shared main one (e.g. while another
checkout's runs); ``PLUGPAY_INFRA=external`` when Kafka and PostgreSQL are someone else's. With
``CI`` set, a mode that cannot be brought up fails the run; elsewhere it is skipped with the
reason.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).parent))

from e2e_support import (
    Deployment,
    World,
    start_compose,
    start_distributed,
    start_embedded,
    stop_distributed,
    stop_embedded_process,
)

ALL_MODES = ("distributed", "embedded", "compose")
DEFAULT_MODES = ("distributed", "embedded")  # compose needs the images: asked for by name
MULTI_PROCESS_MODES = ("distributed", "compose")
# The distributed mode's stack: the shared main one, or an isolated instance (its own ports,
# databases and topics; stopped at the end) when the main one runs another checkout's code.
E2E_STACK = os.environ.get("PLUGPAY_E2E_STACK", "main")
E2E_PORT_BASE = int(os.environ.get("PLUGPAY_E2E_PORT_BASE", "8100"))
_timings: dict[str, float] = {}


def _modes() -> list[str]:
    wanted = os.environ.get("PLUGPAY_E2E_MODES", ",".join(DEFAULT_MODES))
    return [m for m in ALL_MODES if m in {w.strip() for w in wanted.split(",")}]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "distributed_only: needs the host's distributed stack (scripts/stack.sh)"
    )
    config.addinivalue_line(
        "markers", "multi_process: needs several processes (two gateways): distributed, compose"
    )
    config.addinivalue_line("markers", "compose_only: needs the Compose deployment (containers)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "deployment" in metafunc.fixturenames:
        modes = _modes()
        if metafunc.definition.get_closest_marker("distributed_only"):
            modes = [m for m in modes if m == "distributed"]
        if metafunc.definition.get_closest_marker("multi_process"):
            modes = [m for m in modes if m in MULTI_PROCESS_MODES]
        if metafunc.definition.get_closest_marker("compose_only"):
            modes = [m for m in modes if m == "compose"]
        metafunc.parametrize("deployment", modes, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test for modes this run does not have (distributed-only, multi-process, compose-only)
    is not applicable: deselected, not skipped."""
    markers = ("distributed_only", "multi_process", "compose_only")
    dropped = [
        item
        for item in items
        if any(item.get_closest_marker(m) for m in markers)
        and getattr(getattr(item, "callspec", None), "params", {}).get("deployment")
        not in ALL_MODES
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def pytest_sessionstart(session: pytest.Session) -> None:
    _timings["start"] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"e2e_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if "start" not in _timings:
        return
    lines = [f"e2e wall time: {time.monotonic() - _timings['start']:.1f}s"]
    lines += [f"  {k}: {v:.1f}s" for k, v in _timings.items() if k != "start"]
    terminalreporter.write_line("\n".join(lines))


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    mode = request.param
    began = time.monotonic()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    try:
        if mode == "distributed":
            running = start_distributed(stack_name=E2E_STACK, port_base=E2E_PORT_BASE)
        elif mode == "compose":
            running = start_compose()
        else:
            tmp = tempfile.TemporaryDirectory(prefix="plugpay-e2e-")
            data = Path(tmp.name) / "data"
            data.mkdir()
            running = start_embedded(data)
    except Exception as error:
        if tmp is not None:
            tmp.cleanup()
        if os.environ.get("CI"):
            raise  # CI never skips a mode
        pytest.skip(f"{mode} mode could not be brought up: {error}")
    _timings[f"{mode} bring-up"] = time.monotonic() - began
    try:
        yield running
    finally:
        if running.process is not None:
            code = stop_embedded_process(running.process)
            log = running.log_path.read_text(errors="replace") if running.log_path else ""
            if tmp is not None:
                tmp.cleanup()
            assert code == 0, f"plugpay run exited with {code} on Ctrl-C:\n{log[-3000:]}"
            assert "Plugpay stopped" in log, log[-3000:]
        if mode == "distributed" and E2E_STACK != "main":
            stop_distributed(stack_name=E2E_STACK, port_base=E2E_PORT_BASE)
        _timings[f"{mode} total"] = time.monotonic() - began


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def world(deployment: Deployment) -> AsyncIterator[World]:
    world = World(deployment)
    await world.start()
    try:
        yield world
    finally:
        await world.close()


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def invariants(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After every test that passed: its sessions are terminal, billed at most once, the
    ledger balances, no hold left open. Stations and phones are closed either way."""
    if "world" not in request.fixturenames:
        yield
        return
    world: World = request.getfixturevalue("world")
    try:
        yield
        call = getattr(request.node, "e2e_call", None)
        if call is not None and call.passed:
            await world.check_invariants()
    finally:
        await world.end_test()
