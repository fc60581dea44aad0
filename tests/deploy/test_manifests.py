"""Every object of every overlay is valid against the vendored schemas and follows our rules."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from deploy_support import OVERLAYS, by_name, load_render, of_kind, pod_specs
from plugpay_events.topics import ALL_TOPICS

SERVICES = (
    "auth-svc",
    "station-gateway",
    "session-svc",
    "pricing-svc",
    "billing-svc",
    "notification-svc",
)
HEALTH = {
    "auth-svc": "/auth",
    "station-gateway": "/stations",
    "session-svc": "/sessions",
    "pricing-svc": "/pricing",
    "billing-svc": "/billing",
    "notification-svc": "/notifications",
}


def errors(validators: dict[tuple[str, str], Any], obj: dict[str, Any]) -> list[str]:
    key = (obj["apiVersion"], obj["kind"])
    if key not in validators:
        return [f"no vendored schema for {key}"]
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in validators[key].iter_errors(obj)
    ]


# ---- schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_its_schema(
    overlay: str, overlays: dict[str, list[dict[str, Any]]], validators: dict[tuple[str, str], Any]
) -> None:
    problems = {}
    for obj in overlays[overlay]:
        if errs := errors(validators, obj):
            problems[f"{obj['kind']}/{obj['metadata']['name']}"] = errs
    assert not problems, problems


def test_schemas_cover_kubernetes_strimzi_and_cloudnativepg(
    validators: dict[tuple[str, str], Any],
) -> None:
    groups = {api.split("/")[0] for api, _ in validators}
    assert {"apps", "kafka.strimzi.io", "postgresql.cnpg.io", "barmancloud.cnpg.io"} <= groups


@pytest.mark.parametrize(
    ("kind", "mutate", "needle"),
    [
        (
            "Deployment",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(
                imagePullPolcy="Always"
            ),
            "imagePullPolcy",
        ),
        (
            "Deployment",
            lambda o: o["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(
                memory={"a": 1}
            ),
            "memory",
        ),
        ("KafkaTopic", lambda o: o["spec"].update(partitions="twelve"), "partitions"),
        (
            "KafkaUser",
            lambda o: o["spec"]["authorization"]["acls"][0].update(operations=["Steal"]),
            "Steal",
        ),
        ("Cluster", lambda o: o["spec"].update(instancess=3), "instancess"),
        ("Kafka", lambda o: o["spec"]["kafka"]["listeners"][0].update(type="sideways"), "sideways"),
        (
            "Ingress",
            lambda o: o["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"][
                "port"
            ].update(number="eighty"),
            "eighty",
        ),
    ],
)
def test_schemas_reject_broken_objects(
    kind: str,
    mutate: Any,
    needle: str,
    overlays: dict[str, list[dict[str, Any]]],
    validators: dict[tuple[str, str], Any],
) -> None:
    """Validation is strict (unknown fields, types, enums): a green run means something."""
    obj = copy.deepcopy(of_kind(overlays["prod"], kind)[0])
    mutate(obj)
    errs = errors(validators, obj)
    assert errs and any(needle in e for e in errs), errs


# ---- security and operability of every workload ----------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_locked_down(
    overlay: str, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    specs = list(pod_specs(overlays[overlay]))
    assert len(specs) >= len(SERVICES)
    for where, spec in specs:
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), where
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            name = f"{where}/{c['name']}"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, name
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, name
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("privileged", False) is False, name
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not sc.get("capabilities", {}).get("add"), name
            res = c.get("resources", {})
            assert {"cpu", "memory"} <= set(res.get("requests", {})), name
            assert "memory" in res.get("limits", {}), name
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in c, f"{name}: no {probe}"
            image = c["image"]
            assert re.search(r":[\w.-]+$", image) or "@sha256:" in image, (
                f"{name}: untagged {image}"
            )
            assert not image.endswith(":latest"), name
            # the only writable paths are volumes (read-only root FS); /tmp is one
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_use_the_services_health_endpoints(
    overlay: str, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    deployments = by_name(overlays[overlay], "Deployment")
    assert set(deployments) == set(SERVICES)
    for name, dep in deployments.items():
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert c["startupProbe"]["httpGet"]["path"] == f"{HEALTH[name]}/healthz"
        assert c["livenessProbe"]["httpGet"]["path"] == f"{HEALTH[name]}/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == f"{HEALTH[name]}/readyz"
        assert c["ports"][0]["containerPort"] == 8000
        assert "preStop" in c["lifecycle"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_service_hpa_pdb_and_network_policy(
    overlay: str, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    objects = overlays[overlay]
    services, hpas, pdbs = (
        by_name(objects, k) for k in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")
    )
    policies = of_kind(objects, "NetworkPolicy")
    for dep in of_kind(objects, "Deployment"):
        name = dep["metadata"]["name"]
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        assert "replicas" not in dep["spec"], f"{name}: replicas belong to the HPA"
        assert set(pdbs[name]["spec"]["selector"]["matchLabels"].items()) <= set(pod_labels.items())
        assert set(services[name]["spec"]["selector"].items()) <= set(pod_labels.items())
        own = [
            p
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels")
            and set(p["spec"]["podSelector"]["matchLabels"].items()) <= set(pod_labels.items())
        ]
        assert own, f"{name}: no NetworkPolicy of its own"
    deny = by_name(objects, "NetworkPolicy")["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny


def test_network_policies_follow_the_call_graph(overlays: dict[str, list[dict[str, Any]]]) -> None:
    policies = by_name(overlays["prod"], "NetworkPolicy")
    # auth-svc serves the JWKS: every other service may call it, nothing else calls in
    auth_in = policies["auth-svc"]["spec"]["ingress"]
    callers = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in auth_in
        for peer in rule["from"]
        if "podSelector" in peer and "namespaceSelector" not in peer
    }
    assert callers == set(SERVICES) - {"auth-svc"}
    for name in set(SERVICES) - {"auth-svc"}:
        assert "ingress" in policies[name]["spec"]
        from_pods = [
            peer
            for rule in policies[name]["spec"]["ingress"]
            for peer in rule["from"]
            if "podSelector" in peer and "namespaceSelector" not in peer
        ]
        assert not from_pods, f"{name} takes no calls from other services"
    for name in SERVICES:
        egress = policies[name]["spec"]["egress"]
        ports = {p["port"] for rule in egress for p in rule.get("ports", [])}
        assert {9093, 5432} <= ports, name
    leaving = {
        n: {
            p["port"]
            for r in policies[n]["spec"]["egress"]
            if any("ipBlock" in peer for peer in r["to"])
            for p in r.get("ports", [])
        }
        for n in SERVICES
    }
    # Out of the cluster: billing to the payment processor, notification to the mail server.
    assert {n: ports for n, ports in leaving.items() if ports} == {
        "billing-svc": {443},
        "notification-svc": {465, 587},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_in_manifests(
    overlay: str, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    objects = overlays[overlay]
    assert not of_kind(objects, "Secret"), "Secrets are created out of band (docs/runbook.md)"
    for where, spec in pod_specs(objects):
        for c in spec["containers"]:
            for env in c.get("env", []):
                if (
                    re.search(r"PASSWORD|SECRET|TOKEN|SIGNING_KEY|JWKS$", env["name"])
                    and "value" in env
                ):
                    pytest.fail(f"{where}: {env['name']} must come from a Secret")
                if "value" in env:
                    assert not re.search(r"://[^:/]+:[^$@][^@]*@", env["value"]), (
                        f"{where}: {env['name']}"
                    )
    for cm in of_kind(objects, "ConfigMap"):
        for key in cm.get("data", {}):
            assert not re.search(r"PASSWORD|SECRET|TOKEN|PRIVATE", key), key


def test_station_gateway_drains_gracefully(overlays: dict[str, list[dict[str, Any]]]) -> None:
    for overlay, objects in overlays.items():
        dep = by_name(objects, "Deployment")["station-gateway"]
        spec = dep["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= 120, overlay
        pre_stop = spec["containers"][0]["lifecycle"]["preStop"]
        assert pre_stop["sleep"]["seconds"] < spec["terminationGracePeriodSeconds"]
        assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        hpa = by_name(objects, "HorizontalPodAutoscaler")["station-gateway"]
        assert hpa["spec"]["behavior"]["scaleDown"]["policies"] == [
            {"type": "Pods", "value": 1, "periodSeconds": 300}
        ]
    prod = by_name(overlays["prod"], "Deployment")["station-gateway"]["spec"]["template"]["spec"]
    assert prod["terminationGracePeriodSeconds"] == 300


# ---- Kafka ------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topics_come_from_libs_events(
    overlay: str, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    topics = {t["spec"]["topicName"]: t for t in of_kind(overlays[overlay], "KafkaTopic")}
    assert set(topics) == {t.name for t in ALL_TOPICS}
    for t in ALL_TOPICS:
        spec = topics[t.name]["spec"]
        assert spec["partitions"] == t.partitions
        assert spec["config"]["retention.ms"] == "-1" == t.config["retention.ms"]
        assert spec["config"]["cleanup.policy"] == t.config["cleanup.policy"]
        assert topics[t.name]["metadata"]["labels"]["strimzi.io/cluster"] == "plugpay-kafka"
        if overlay == "prod":
            assert spec["replicas"] == t.replication_factor_prod == 3
            assert spec["config"]["min.insync.replicas"] == str(t.min_insync_replicas_prod) == "2"
        else:
            assert spec["replicas"] == 1 and spec["config"]["min.insync.replicas"] == "1"


@pytest.mark.parametrize(("overlay", "brokers"), [("dev", 1), ("prod", 3)])
def test_kafka_cluster_is_kraft_with_node_pools(
    overlay: str, brokers: int, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    objects = overlays[overlay]
    (kafka,) = of_kind(objects, "Kafka")
    assert "zookeeper" not in kafka["spec"]
    pools = of_kind(objects, "KafkaNodePool")
    assert {p["metadata"]["labels"]["strimzi.io/cluster"] for p in pools} == {
        kafka["metadata"]["name"]
    }
    count = {
        role: sum(p["spec"]["replicas"] for p in pools if role in p["spec"]["roles"])
        for role in ("broker", "controller")
    }
    assert count == {"broker": brokers, "controller": brokers}
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert config["min.insync.replicas"] == (2 if brokers == 3 else 1)
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert all(x.get("authentication") for x in kafka["spec"]["kafka"]["listeners"])


def _acls(user: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    """operation -> {(resource type, name + '*' if prefix)}"""
    out: dict[str, set[tuple[str, str]]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        r = acl["resource"]
        name = r["name"] + ("*" if r.get("patternType") == "prefix" else "")
        for op in acl["operations"]:
            out.setdefault(op, set()).add((r["type"], name))
        assert acl.get("type", "allow") == "allow"
    return out


# docs/flow.md: who emits and who consumes what
WRITES = {
    "auth-svc": {"plugpay.identity"},
    "station-gateway": {"plugpay.stations", "plugpay.sessions", "plugpay.meter"},
    "session-svc": {"plugpay.sessions"},
    "pricing-svc": {"plugpay.pricing", "plugpay.sessions"},
    "billing-svc": {"plugpay.sessions", "plugpay.billing"},
    "notification-svc": set(),
}
READS = {
    "auth-svc": set(),
    "station-gateway": {"plugpay.identity", "plugpay.pricing", "plugpay.sessions"},
    "session-svc": {"plugpay.sessions", "plugpay.meter", "plugpay.stations", "plugpay.identity"},
    "pricing-svc": {"plugpay.identity", "plugpay.stations", "plugpay.sessions"},
    "billing-svc": {"plugpay.identity", "plugpay.sessions"},
    "notification-svc": {"plugpay.identity", "plugpay.sessions", "plugpay.billing"},
}


@pytest.mark.parametrize("service", sorted(READS))
def test_each_service_consumes_exactly_what_its_kafka_user_may_read(service: str) -> None:
    """The ACLs follow the consumers each ``create_app`` really declares: a new consumer on a
    topic the service may not read fails here (and docs/flow.md must say so), not in production."""
    specs = load_render().consumer_specs(service)
    assert {t.name for spec in specs for t in spec.topics} == READS[service]
    for spec in specs:
        assert spec.group.startswith(f"{service}."), "consumer groups are <service>.<purpose>"


def test_kafka_users_may_write_only_their_own_topics(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    users = by_name(overlays["prod"], "KafkaUser")
    assert set(users) == {*SERVICES, "analyst"}
    for name in SERVICES:
        acls = _acls(users[name])
        assert users[name]["spec"]["authentication"]["type"] == "scram-sha-512"
        assert acls["Write"] == {("topic", t) for t in WRITES[name] | {"plugpay.deadletter"}}, name
        assert acls.get("Read", set()) - {("group", f"{name}.*")} == {
            ("topic", t) for t in READS[name]
        }, name
        if READS[name]:
            assert ("group", f"{name}.*") in acls["Read"], "consumer groups are <service>.<purpose>"
        forbidden = {"Create", "Delete", "Alter", "AlterConfigs", "All", "ClusterAction"}
        assert not forbidden & set(acls), f"{name}: {forbidden & set(acls)}"
    analyst = _acls(users["analyst"])
    assert set(analyst) <= {"Read", "Describe", "DescribeConfigs"}, "analysts only read"
    assert ("topic", "plugpay.*") in analyst["Read"]


def test_every_service_has_a_kafka_user_secret_and_the_cluster_ca(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    for name, dep in by_name(overlays["prod"], "Deployment").items():
        spec = dep["spec"]["template"]["spec"]
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["PLUGPAY_KAFKA_SASL_USERNAME"]["value"] == name
        assert env["PLUGPAY_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == name
        vols = {v["name"]: v for v in spec["volumes"]}
        assert vols["kafka-ca"]["secret"]["secretName"] == "plugpay-kafka-cluster-ca-cert"


# ---- PostgreSQL -------------------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "instances"), [("dev", 1), ("prod", 3)])
def test_postgres_cluster_with_a_database_and_role_per_service(
    overlay: str, instances: int, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    objects = overlays[overlay]
    (cluster,) = of_kind(objects, "Cluster")
    assert cluster["spec"]["instances"] == instances
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    dbs = {d["spec"]["name"]: d["spec"] for d in of_kind(objects, "Database")}
    assert len(dbs) == len(SERVICES) == len(roles)
    for db in dbs.values():
        assert db["cluster"]["name"] == cluster["metadata"]["name"]
        assert db["owner"] in roles
        assert roles[db["owner"]]["passwordSecret"]["name"]
    owners = sorted(db["owner"] for db in dbs.values())
    assert owners == sorted(s.replace("-", "_") for s in SERVICES)
    for name, dep in by_name(objects, "Deployment").items():
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        url = env[name.upper().replace("-", "_") + "_DATABASE_URL"]["value"]
        role = name.replace("-", "_")
        assert url.startswith(
            f"postgresql+asyncpg://{role}:$(PLUGPAY_DATABASE_PASSWORD)@plugpay-pg-rw:5432/"
        )
        assert url.rsplit("/", 1)[1] in dbs and dbs[url.rsplit("/", 1)[1]]["owner"] == role


def test_prod_postgres_is_backed_up(overlays: dict[str, list[dict[str, Any]]]) -> None:
    objects = overlays["prod"]
    (cluster,) = of_kind(objects, "Cluster")
    (plugin,) = cluster["spec"]["plugins"]
    assert plugin["isWALArchiver"] is True
    stores = by_name(objects, "ObjectStore")
    store = stores[plugin["parameters"]["barmanObjectName"]]
    creds = store["spec"]["configuration"]["s3Credentials"]
    assert creds["accessKeyId"]["name"] and creds["secretAccessKey"]["name"]
    (backup,) = of_kind(objects, "ScheduledBackup")
    assert backup["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert backup["spec"]["method"] == "plugin"
    assert not of_kind(overlays["dev"], "ScheduledBackup")
