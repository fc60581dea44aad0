"""Regenerate the vendored JSON schemas the deploy tests validate manifests against.

Run once per upgrade of Kubernetes, Strimzi or CloudNativePG (never at test time):

    python3 -m uv run --no-sync python deploy/k8s/schemas/update.py

Sources, fetched with the ordinary clients from their registries:
- Kubernetes: ``api/openapi-spec/swagger.json`` of the Go module ``k8s.io/kubernetes``
  (``go mod download``), only the kinds Plugpay's manifests use.
- CloudNativePG: ``config/crd/bases/*.yaml`` of the Go module ``github.com/cloudnative-pg/cloudnative-pg``
  and of ``github.com/cloudnative-pg/plugin-barman-cloud`` (the ObjectStore of backups).
- Strimzi: ``crds/v1/*.yaml`` in the Maven artifact ``io.strimzi:api:<v>:jar:tests``
  (the CRDs Strimzi's build generates from its API classes; ``mvn dependency:get``).

Each output file is one JSON schema (draft 4, as Kubernetes' OpenAPI) per apiVersion+kind:
objects reject unknown fields, like ``kubectl apply`` with its default strict field validation.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
K8S_VERSION = "v1.34.4"
CNPG_VERSION = "v1.28.2"
BARMAN_PLUGIN_VERSION = "v0.15.0"
STRIMZI_VERSION = "0.50.0"

# apiVersion, kind -> swagger definition
CORE_KINDS = {
    ("v1", "Namespace"): "io.k8s.api.core.v1.Namespace",
    ("v1", "ServiceAccount"): "io.k8s.api.core.v1.ServiceAccount",
    ("v1", "ConfigMap"): "io.k8s.api.core.v1.ConfigMap",
    ("v1", "Secret"): "io.k8s.api.core.v1.Secret",
    ("v1", "Service"): "io.k8s.api.core.v1.Service",
    ("apps/v1", "Deployment"): "io.k8s.api.apps.v1.Deployment",
    ("batch/v1", "Job"): "io.k8s.api.batch.v1.Job",
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
    ): "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "io.k8s.api.policy.v1.PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "io.k8s.api.networking.v1.NetworkPolicy",
    ("networking.k8s.io/v1", "Ingress"): "io.k8s.api.networking.v1.Ingress",
    ("rbac.authorization.k8s.io/v1", "Role"): "io.k8s.api.rbac.v1.Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "io.k8s.api.rbac.v1.RoleBinding",
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

CNPG_CRDS = [
    "postgresql.cnpg.io_clusters.yaml",
    "postgresql.cnpg.io_databases.yaml",
    "postgresql.cnpg.io_scheduledbackups.yaml",
]
BARMAN_CRDS = ["barmancloud.cnpg.io_objectstores.yaml"]
STRIMZI_CRDS = [
    "crds/v1/040-Crd-kafka.yaml",
    "crds/v1/043-Crd-kafkatopic.yaml",
    "crds/v1/044-Crd-kafkauser.yaml",
    "crds/v1/045-Crd-kafkanodepool.yaml",
]


def go_module_dir(module: str, version: str) -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    return Path(json.loads(out.stdout)["Dir"])


def maven_tests_jar(group: str, artifact: str, version: str) -> Path:
    subprocess.run(
        [
            "mvn",
            "-q",
            "dependency:get",
            "-Dtransitive=false",
            f"-Dartifact={group}:{artifact}:{version}:jar:tests",
        ],
        check=True,
    )
    repo = Path.home() / ".m2" / "repository"
    return repo.joinpath(*group.split("."), artifact, version, f"{artifact}-{version}-tests.jar")


# ---- Kubernetes core (swagger 2.0 definitions) -------------------------------------------


def _core_fix(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
        return {"oneOf": [{"type": "string"}, {"type": "number"}]}
    return schema


def _strict(node: Any) -> Any:
    """Objects with declared properties reject unknown fields; descriptions are dropped."""
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("description", "example"):
            continue
        if key in ("properties", "definitions", "patternProperties"):
            # a map of names to schemas: the names are fields (CNPG has a "description" field)
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        else:
            out[key] = _strict(value)
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _reachable(defs: dict[str, Any], root: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = _core_fix(name, copy.deepcopy(defs[name]))
        stack = [seen[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/definitions/"):
                    todo.append(ref.removeprefix("#/definitions/"))
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return seen


def _with_gvk(api_version: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "allOf": [
            body,
            {
                "type": "object",
                "required": ["apiVersion", "kind", "metadata"],
                "properties": {
                    "apiVersion": {"enum": [api_version]},
                    "kind": {"enum": [kind]},
                    "metadata": {"type": "object", "required": ["name"]},
                },
            },
        ],
    }


def core_schemas(swagger: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    defs = swagger["definitions"]
    out = {}
    for (api_version, kind), name in CORE_KINDS.items():
        reach = {k: _strict(v) for k, v in _reachable(defs, name).items()}
        body = {"$ref": f"#/definitions/{name}"}
        schema = _with_gvk(api_version, kind, body)
        schema["definitions"] = reach
        out[(api_version, kind)] = schema
    return out


# ---- CRDs --------------------------------------------------------------------------------


def crd_schemas(
    crd: dict[str, Any], object_meta: dict[str, Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    out = {}
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        body = copy.deepcopy(version["schema"]["openAPIV3Schema"])
        props = body.setdefault("properties", {})
        props.pop("metadata", None)
        props.pop("apiVersion", None)
        props.pop("kind", None)
        body = _strict(body)
        # apiVersion/kind/metadata are checked by the wrapper, against Kubernetes' ObjectMeta.
        body["properties"]["apiVersion"] = {"type": "string"}
        body["properties"]["kind"] = {"type": "string"}
        body["properties"]["metadata"] = {"$ref": f"#/definitions/{OBJECT_META}"}
        api_version = f"{group}/{version['name']}"
        schema = _with_gvk(api_version, kind, body)
        schema["definitions"] = object_meta
        out[(api_version, kind)] = schema
    return out


def write(schemas: dict[tuple[str, str], dict[str, Any]], source: str) -> list[str]:
    names = []
    for (api_version, kind), schema in sorted(schemas.items()):
        fname = f"{kind.lower()}-{api_version.replace('/', '-').replace('.', '-')}.json"
        schema["x-source"] = source
        (HERE / fname).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        names.append(fname)
    return names


def main() -> int:
    for old in HERE.glob("*.json"):
        old.unlink()
    k8s = go_module_dir("k8s.io/kubernetes", K8S_VERSION)
    swagger = json.loads((k8s / "api/openapi-spec/swagger.json").read_text())
    written = write(core_schemas(swagger), f"k8s.io/kubernetes@{K8S_VERSION} swagger.json")
    object_meta = {
        k: _strict(v) for k, v in _reachable(swagger["definitions"], OBJECT_META).items()
    }

    cnpg = go_module_dir("github.com/cloudnative-pg/cloudnative-pg", CNPG_VERSION)
    for f in CNPG_CRDS:
        crd = yaml.safe_load((cnpg / "config/crd/bases" / f).read_text())
        written += write(crd_schemas(crd, object_meta), f"cloudnative-pg@{CNPG_VERSION} {f}")
    barman = go_module_dir("github.com/cloudnative-pg/plugin-barman-cloud", BARMAN_PLUGIN_VERSION)
    for f in BARMAN_CRDS:
        crd = yaml.safe_load((barman / "config/crd/bases" / f).read_text())
        written += write(
            crd_schemas(crd, object_meta), f"plugin-barman-cloud@{BARMAN_PLUGIN_VERSION} {f}"
        )

    jar = maven_tests_jar("io.strimzi", "api", STRIMZI_VERSION)
    with zipfile.ZipFile(jar) as z:
        for f in STRIMZI_CRDS:
            crd = yaml.safe_load(z.read(f))
            written += write(
                crd_schemas(crd, object_meta), f"io.strimzi:api:{STRIMZI_VERSION}:tests {f}"
            )
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
