"""Helpers of the deployment tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SCHEMAS = K8S / "schemas"


def load_render() -> ModuleType:
    """scripts/render_k8s.py as a module."""
    if "render_k8s" in sys.modules:
        return sys.modules["render_k8s"]
    spec = importlib.util.spec_from_file_location("render_k8s", ROOT / "scripts" / "render_k8s.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_k8s"] = module
    spec.loader.exec_module(module)
    return module


def build(kustomize: list[str], path: Path) -> list[dict[str, Any]]:
    """`kustomize build PATH`, or `kubectl kustomize PATH` (the fallback of tools.sh)."""
    cmd = (
        [*kustomize, str(path)]
        if Path(kustomize[0]).name == "kubectl"
        else [*kustomize, "build", str(path)]
    )
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in of_kind(objects, kind)}


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod template of every workload kind."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]
        elif o["kind"] == "CronJob":
            yield (
                f"CronJob/{o['metadata']['name']}",
                o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            )
