"""The reliability suite (docs/reliability.md): short variants by default; ``--long`` or
PLUGPAY_LONG=1 for the long ones. Tests that need the stack bring up the isolated instance."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="long chaos/fuzz variants")
    parser.addoption(
        "--chaos-seed",
        type=int,
        default=None,
        help="the chaos run's fault schedule (default: PLUGPAY_CHAOS_SEED, else a new one)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--long"):
        os.environ["PLUGPAY_LONG"] = "1"  # read at import time by the hypothesis settings


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--long") or os.environ.get("PLUGPAY_LONG"))


@pytest.fixture(scope="session")
def stack() -> str:
    """The isolated distributed stack (started if needed; left running for the next test)."""
    support.stack_up()
    return support.BASE_URL


@pytest.fixture(scope="session")
async def world(stack: str):  # type: ignore[no-untyped-def]
    return await support.build_world(stations=3, drivers=3)


@pytest.fixture(scope="session")
def chaos_seed(request: pytest.FixtureRequest) -> int:
    """Fixes the chaos run's fault schedule (which process dies when, which stations drop,
    each station's choices); printed with every result so a failing run can be replayed."""
    import random

    given = request.config.getoption("--chaos-seed")
    if given is None and os.environ.get("PLUGPAY_CHAOS_SEED"):
        given = int(os.environ["PLUGPAY_CHAOS_SEED"])
    return given if given is not None else random.SystemRandom().randrange(1, 2**31)
