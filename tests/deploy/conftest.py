"""Fixtures of the deployment tests: the generator, the rendered overlays, the vendored schemas.

Everything here is offline: kustomize comes from deploy/k8s/tools.sh (cached under .cache/bin,
else kubectl's built-in kustomize), the schemas from deploy/k8s/schemas/ in the repository.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

# the tests import their helpers as a plain module (pytest runs with --import-mode=importlib)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_support import K8S, OVERLAYS, SCHEMAS, build, load_render


@pytest.fixture(scope="session")
def render() -> ModuleType:
    return load_render()


@pytest.fixture(scope="session")
def kustomize() -> list[str]:
    out = subprocess.run(
        [str(K8S / "tools.sh"), "kustomize"], check=True, capture_output=True, text=True
    )
    return shlex.split(out.stdout.strip())


@pytest.fixture(scope="session")
def overlays(kustomize: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every overlay, rendered: {"dev": [objects], "prod": [objects]}."""
    return {name: build(kustomize, K8S / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def validators() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> a JSON-schema validator, from deploy/k8s/schemas/*.json."""
    out = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        gvk = schema["allOf"][1]["properties"]
        key = (gvk["apiVersion"]["enum"][0], gvk["kind"]["enum"][0])
        out[key] = jsonschema.Draft4Validator(schema)
    return out
