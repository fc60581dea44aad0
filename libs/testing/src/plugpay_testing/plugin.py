"""pytest plugin: fixtures for a fresh database and an isolated topic namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from plugpay_testing.databases import scratch_database
from plugpay_testing.infrastructure import (
    InfraUnavailable,
    kafka_bootstrap,
    postgres_admin_url,
    provenance,
    stop_containers,
)

# Fixtures that reach a real server; `--no-infra` deselects every test that uses one.
INFRA_FIXTURES = frozenset({"postgres_url", "database_url", "kafka"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-infra",
        action="store_true",
        help="run only tests that need no PostgreSQL or Kafka (the fast tier, `make check`)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--no-infra"):
        return
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        needs_infra = INFRA_FIXTURES.intersection(getattr(item, "fixturenames", ())) or any(
            item.get_closest_marker(name) for name in ("infra", "kafka")
        )
        (deselected if needs_infra else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def _found(what: str, find: Callable[[], str]) -> str:
    """The address ``find`` gives of a real server; without one, a skip (a failure in CI)."""
    try:
        return find()
    except InfraUnavailable as error:
        # In CI a missing broker or database is a failure, never a silent skip.
        if os.environ.get("CI"):
            pytest.fail(f"{what} unavailable in CI: {error}", pytrace=False)
        pytest.skip(f"{what} unavailable: {error}")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Admin URL of a real PostgreSQL server (SQLAlchemy asyncpg form)."""
    return _found("PostgreSQL", postgres_admin_url)


@pytest.fixture(scope="session")
def kafka() -> str:
    """Bootstrap address of a real Kafka broker."""
    return _found("Kafka", kafka_bootstrap)


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    async with scratch_database(postgres_url) as url:
        yield url


@pytest.fixture
def topic_prefix() -> str:
    """A unique prefix so each test's topics and consumer groups start empty."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture(scope="session", autouse=True)
def _stop_test_containers() -> Iterator[None]:
    yield
    stop_containers()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where this run's servers came from (environment, testcontainers, local scripts)."""
    for server, source in sorted(provenance.items()):
        terminalreporter.write_line(f"plugpay infrastructure: {server} from {source}")
