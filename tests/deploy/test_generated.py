"""Generated files are committed and current; the route table is the only source of routes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import ROOT, of_kind
from plugpay_platform import catalogue


def test_committed_generated_files_are_up_to_date(render: Any) -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in render.render_all().items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, (
        f"stale generated files {stale}: run "
        "`python3 -m uv run --no-sync python scripts/render_k8s.py` and commit"
    )


def test_generated_files_are_tracked_by_git(render: Any) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git work tree")
    paths = [str(p.relative_to(ROOT)) for p in render.render_all()]
    tracked = subprocess.run(
        ["git", "ls-files", "--", *paths], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(set(paths) - set(tracked)) == []


def test_no_leftover_files_in_generated_dir(render: Any) -> None:
    expected = {p for p in render.render_all() if p.parent == render.GENERATED}
    assert set(render.GENERATED.glob("*.yaml")) == expected


# ---- routes -----------------------------------------------------------------------------


def nginx_locations(text: str) -> dict[str, dict[str, Any]]:
    """location -> {upstream, websocket, buffering_off, read_timeout, max_body, alias}."""
    out: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if m := re.match(r"location\s+(=\s+)?(\S+)\s*\{$", line):
            current = {"websocket": False, "buffering_off": False}
            out[(m.group(1) or "").replace(" ", "") + m.group(2)] = current
        elif current is not None:
            if line == "}":
                current = None
            elif m := re.match(r"proxy_pass\s+http://([\w-]+);", line):
                current["upstream"] = m.group(1)
            elif line.startswith("proxy_set_header Upgrade $http_upgrade"):
                current["websocket"] = True
            elif line == "proxy_buffering off;":
                current["buffering_off"] = True
            elif m := re.match(r"proxy_read_timeout\s+(\d+)s;", line):
                current["read_timeout"] = int(m.group(1))
            elif m := re.match(r"client_max_body_size\s+(\S+);", line):
                current["max_body"] = m.group(1)
            elif m := re.match(r"(alias|rewrite|return)\s", line):
                current["static"] = True
    return out


def nginx_upstreams(text: str) -> dict[str, str]:
    """upstream -> [server addresses]"""
    out: dict[str, list[str]] = {}
    for name, body in re.findall(r"upstream\s+([\w-]+)\s*\{([^}]*)\}", text):
        out[name] = re.findall(r"server\s+(\S+);", body)
    return out


@pytest.fixture(scope="module")
def route_table(render: Any) -> tuple[dict[str, Any], list[Any]]:
    return render.load_routes()


@pytest.fixture(scope="module")
def nginx_conf(render: Any) -> str:
    return render.NGINX_FILE.read_text()


def test_route_table_has_the_public_prefixes(route_table: tuple[dict[str, Any], list[Any]]) -> None:
    _, routes = route_table
    table = {r.prefix: r.service for r in routes}
    assert table == {
        "/auth": "auth-svc",
        "/docs": "auth-svc",
        "/ocpp": "station-gateway",
        "/stations": "station-gateway",
        "/sessions": "session-svc",
        "/s": "session-svc",
        "/app": "session-svc",
        "/ops": "session-svc",
        "/pricing": "pricing-svc",
        "/billing": "billing-svc",
        "/notifications": "notification-svc",
    }
    flags = {r.prefix: (r.websocket, r.stream) for r in routes}
    assert flags["/ocpp"][0] and flags["/stations"][0], "station sockets need WebSocket upgrade"
    assert flags["/sessions"][1], "live session updates are SSE: no buffering"


def test_nginx_locations_equal_the_route_table(
    route_table: tuple[dict[str, Any], list[Any]], nginx_conf: str, render: Any
) -> None:
    services, routes = route_table
    locations = nginx_locations(nginx_conf)
    expected = {}
    for r in routes:
        expected[f"={r.prefix}"] = r
        expected[f"{r.prefix}/"] = r
    internal = {f"={p}" for p in render.load_internal_paths()}
    assert internal <= set(locations), "metrics are refused by the local gateway"
    for loc in internal:
        assert "upstream" not in locations[loc] and locations[loc].get("static"), loc
    # static front-ends (local gateway only) may add locations below their own prefix
    extra = internal | {
        loc
        for loc in set(locations) - set(expected)
        if any(loc.lstrip("=").startswith(f"{r.prefix}/") for r in routes if r.static)
    }
    assert set(locations) - extra == set(expected)
    for loc, r in expected.items():
        got = locations[loc]
        if r.static:
            assert got.get("static") and "upstream" not in got, loc
            continue
        assert got["upstream"] == r.service, loc
        assert got["websocket"] == r.websocket, loc
        assert got["buffering_off"] == r.stream, loc
        assert got["read_timeout"] == r.timeout_s, loc
        assert got["max_body"] == r.max_body, loc
    upstreams = nginx_upstreams(nginx_conf)
    assert upstreams == {
        n: [f"127.0.0.1:{port}" for port in s["local_ports"]] for n, s in services.items()
    }
    # 8106 is station-gateway's second process.
    assert sorted(s["local_ports"][0] for s in services.values()) == [*range(8101, 8106), 8107]
    assert "listen 127.0.0.1:8080;" in nginx_conf


def test_nginx_forwards_client_identity_and_correlation_id(nginx_conf: str) -> None:
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-ID"):
        assert f"proxy_set_header {header} " in nginx_conf


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_ingress_paths_equal_the_route_table(
    overlay: str,
    overlays: dict[str, list[dict[str, Any]]],
    route_table: tuple[dict[str, Any], list[Any]],
    render: Any,
) -> None:
    _, routes = route_table
    by_prefix = {r.prefix: r for r in routes}
    seen: dict[str, str] = {}
    hosts = set()
    internal: set[str] = set()
    for ing in of_kind(overlays[overlay], "Ingress"):
        ann = ing["metadata"]["annotations"]
        if ann.get("nginx.ingress.kubernetes.io/denylist-source-range") == "0.0.0.0/0,::/0":
            # metrics: routed Exact and refused to every client address
            for rule in ing["spec"]["rules"]:
                hosts.add(rule["host"])
                for p in rule["http"]["paths"]:
                    assert p["pathType"] == "Exact"
                    internal.add(p["path"])
            continue
        assert ann["cert-manager.io/cluster-issuer"], "TLS certificates come from cert-manager"
        assert ing["spec"]["tls"][0]["secretName"]
        for rule in ing["spec"]["rules"]:
            hosts.add(rule["host"])
            assert rule["host"] in ing["spec"]["tls"][0]["hosts"]
            for p in rule["http"]["paths"]:
                assert p["pathType"] == "Prefix"
                assert p["path"] not in seen, f"{p['path']} routed twice"
                seen[p["path"]] = p["backend"]["service"]["name"]
                r = by_prefix[p["path"]]
                assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) == r.timeout_s
                assert ann["nginx.ingress.kubernetes.io/proxy-body-size"] == r.max_body
                buffering = ann.get("nginx.ingress.kubernetes.io/proxy-buffering", "on")
                assert (buffering == "off") == r.stream, p["path"]
    assert seen == {r.prefix: r.service for r in routes}
    assert internal == set(render.load_internal_paths())
    assert len(hosts) == 1 and "example.invalid" not in hosts.pop(), "overlay sets its host"


def test_ingress_backends_are_services_of_the_overlay(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    for objects in overlays.values():
        services = {o["metadata"]["name"] for o in of_kind(objects, "Service")}
        for ing in of_kind(objects, "Ingress"):
            for rule in ing["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    assert p["backend"]["service"]["name"] in services


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_generated_config(tmp_path: Path, nginx_conf: str) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf.replace("__WEB_ROOT__", str(ROOT / "web")))
    out = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


def test_route_table_file_is_valid_yaml() -> None:
    doc = yaml.safe_load((ROOT / "deploy/gateway/routes.yaml").read_text())
    assert set(doc) == {"internal_paths", "defaults", "routes"}
    # Every route's service is the catalogue's; every service's own metrics are internal.
    assert {r["service"] for r in doc["routes"]} <= set(catalogue.BY_NAME)
    assert {f"{s.health_prefix}/metrics" for s in catalogue.SERVICES} <= set(doc["internal_paths"])
