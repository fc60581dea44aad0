"""The authorisation matrix, generated from the route table: every endpoint of every service's
OpenAPI x every role, aimed at another organisation's (or another driver's) data. Expected
policy: authz_policy.POLICY. Denied means 401/403/404 (422 when the body is checked before the
owner, 409 `*_unavailable` when a global name such as a tariff key is taken: no side effect and
no owner revealed); anything else — a 2xx, or a 400/409 from business logic — is unexpected
access."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import support
from authz_policy import POLICY, PUBLIC, ROLES, STATION_AUTH
from plugpay_simulator.stations import SimulatedStation

pytestmark = pytest.mark.infra
DENIED = {401, 403, 404, 422}


async def _targets(world: support.World) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=30) as http:
        owner = world.drivers[1]
        group = f"relb{world.tag}"
        r = await http.post(
            "/auth/groups", json={"name": group}, headers=support.bearer(world.org_b.token)
        )
        assert r.status_code in (201, 409), r.text
        methods = (
            await http.get("/billing/payment-methods", headers=support.bearer(owner.token))
        ).json()
        sim = SimulatedStation(
            world.stations[2], support.BASE_URL.replace("http", "ws"), support.STATION_PASSWORD
        )
        await sim.connect()
        try:
            reply = await sim.request_code(1)
            for _ in range(60):
                r = await http.post(
                    "/sessions/scan",
                    json={"code": reply["qr"]},
                    headers=support.bearer(owner.token),
                )
                if r.status_code == 202:
                    break
                await asyncio.sleep(0.25)
            assert r.status_code == 202, r.text
            await asyncio.sleep(1.0)
        finally:
            await sim.close()
    return {
        "organisation_id": str(world.org_b.organisation_id),
        "station_id": world.station_b,
        "group": group,
        "email": owner.email,
        "session_id": reply["sessionId"],
        "method_id": methods[0]["id"],
        "command_id": str(uuid.uuid4()),
        "refund_id": str(uuid.uuid4()),
        "key": "DEMO-AC",
        "version": "1",
        "code": "34679A",
    }


async def _guest_token(code: str) -> str:
    """A guest's token as the phone gets it (bound to a code other than the target's)."""
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=30) as http:
        r = await http.post("/auth/guest", json={"code": code})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def _tokens(world: support.World, guest: str) -> dict[str, str | None]:
    assert world.unverified is not None
    return {
        "anon": None,
        "driver": world.drivers[0].token,
        "unverified": world.unverified.token,
        "guest": guest,
        "op_a": world.org_a.token,
        "op_b": world.org_b.token,
        "analyst": world.analyst_token,
        "admin": world.admin_token,
    }


async def _routes() -> list[tuple[str, str]]:
    routes = []
    async with httpx.AsyncClient(timeout=30) as http:
        for _name, (port, _db, prefix) in support.SERVICES.items():
            doc = (await http.get(f"http://127.0.0.1:{port}{prefix}/openapi.json")).json()
            for path, ops in doc["paths"].items():
                for method in ops:
                    if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                        routes.append((method.upper(), path))
    return routes


async def _call(http: httpx.AsyncClient, method: str, path: str, token: str | None) -> int:
    """The status, with a taken global name (409 `*_unavailable`) reported as a denial (403)."""
    headers = support.bearer(token) if token else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
        headers["Idempotency-Key"] = uuid.uuid4().hex
    async with http.stream(method, path, **kwargs) as response:
        if response.status_code != 409:
            return response.status_code
        body = await response.aread()
    try:
        reason = json.loads(body).get("reason", "")
    except (ValueError, AttributeError):
        return 409
    return 403 if isinstance(reason, str) and reason.endswith("_unavailable") else 409


async def test_authorisation_matrix(world: support.World) -> None:
    routes = await _routes()
    unknown = [r for r in routes if r not in POLICY]
    assert not unknown, (
        f"endpoints without an expected policy (add them to authz_policy): {unknown}"
    )
    targets = await _targets(world)
    tokens = _tokens(world, await _guest_token("TTTTTT"))
    unexpected: list[str] = []
    too_tight: list[str] = []
    cells = 0
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=15) as http:
        for method, template in routes:
            policy = POLICY[(method, template)]
            if policy == PUBLIC:
                continue
            path = template
            for name, value in targets.items():
                path = path.replace("{" + name + "}", value)
            for role in ROLES:
                allowed = policy != STATION_AUTH and role in policy
                if allowed and method != "GET":
                    continue  # no side effects from the permitted side
                status = await _call(http, method, path, tokens[role])
                cells += 1
                if allowed and (status in (401, 403) or status >= 500):
                    too_tight.append(f"{role} {method} {template}: {status}")
                if not allowed and status not in DENIED:
                    unexpected.append(f"{role} {method} {template}: {status}")
    print(f"authorisation matrix: {len(routes)} endpoints, {cells} cells probed")
    # Stricter than the policy (e.g. an admin without an organisation on organisation-scoped
    # operator endpoints, an unverified driver typing a code) is reported, not failed.
    print(f"stricter than the policy: {too_tight}")
    out = support.ROOT / ".local" / "reliability"
    out.mkdir(parents=True, exist_ok=True)  # the first test of a fresh clone's run
    (out / "authz.json").write_text(
        json.dumps(
            {
                "endpoints": len(routes),
                "cells": cells,
                "unexpected": unexpected,
                "stricter": too_tight,
            },
            indent=1,
        )
    )
    assert not unexpected, unexpected


async def test_cross_organisation_writes_with_valid_bodies(world: support.World) -> None:
    """Organisation A's operator, with well-formed requests, on organisation B's station."""
    a, b = world.org_a, world.org_b
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=15) as http:
        r = await http.put(
            f"/pricing/stations/{world.station_b}",
            json={"time_zone": "Europe/Berlin", "tariff_key": "DEMO-AC"},
            headers=support.bearer(a.token),
        )
        assert r.status_code in (403, 404), r.text
        r = await http.put(
            f"/auth/stations/{world.station_b}/credentials",
            json={"password": "taken-over-1"},
            headers=support.bearer(a.token),
        )
        assert r.status_code in (403, 404), r.text
        r = await http.post(
            f"/stations/{world.station_b}/commands",
            json={"action": "Reset", "payload": {"type": "Hard"}},
            headers=support.bearer(a.token),
        )
        assert r.status_code in (403, 404, 422), r.text
        r = await http.post(
            "/auth/stations",
            json={
                "id": f"RELX-{world.tag}",
                "name": "x",
                "organisation_id": str(b.organisation_id),
                "connectors": [{"connector_id": 1, "max_power_w": 11000}],
            },
            headers=support.bearer(a.token),
        )
        assert r.status_code in (403, 404, 422) or (
            r.status_code == 201 and r.json()["organisation_id"] == str(a.organisation_id)
        ), r.text
        r = await http.post(
            "/auth/users",
            json={
                "email": f"x{world.tag}@example.com",
                "password": "whatever-pw-1",
                "role": "admin",
            },
            headers=support.bearer(a.token),
        )
        assert r.status_code == 403, r.text


async def test_group_membership_stays_in_the_organisation_and_enumerates_nothing(
    world: support.World,
) -> None:
    """Organisation B's operator enrols only B's accounts: A's operator, the admin, a driver
    (who is only invited) and an unknown address all get one answer; no token changes."""
    group = f"relm{world.tag}"
    b = support.bearer(world.org_b.token)
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=15) as http:
        r = await http.post("/auth/groups", json={"name": group}, headers=b)
        assert r.status_code in (201, 409), r.text
        answers = set()
        for email in (
            world.org_a.email,
            "admin@example.com",
            world.drivers[0].email,
            f"nobody-{world.tag}@example.com",
        ):
            r = await http.post(f"/auth/groups/{group}/members", json={"email": email}, headers=b)
            answers.add((r.status_code, r.text))
        # One answer (a driver is invited, the others are not, and nobody can tell).
        assert len(answers) == 1, answers
        assert next(iter(answers))[0] == 202
        # A's operator cannot enrol anyone in B's group, nor tell it from a missing one.
        a = support.bearer(world.org_a.token)
        theirs = await http.post(
            f"/auth/groups/{group}/members", json={"email": world.org_a.email}, headers=a
        )
        missing = await http.post(
            f"/auth/groups/none{world.tag}/members", json={"email": world.org_a.email}, headers=a
        )
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json() == missing.json()
        r = await http.post(
            "/auth/token", data={"username": world.org_a.email, "password": support.DEMO_PASSWORD}
        )
        assert r.status_code == 200, r.text
        me = await http.get("/auth/me", headers=support.bearer(r.json()["access_token"]))
        assert group not in me.json()["groups"]
        # B's own operator is enrolled.
        r = await http.post(
            f"/auth/groups/{group}/members", json={"email": world.org_b.email}, headers=b
        )
        assert r.status_code == 204, r.text


async def test_other_organisations_objects_look_missing(world: support.World) -> None:
    """auth-svc answers another organisation's object exactly as a missing one."""
    a = support.bearer(world.org_a.token)
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=15) as http:
        for theirs, nothing in (
            (f"/auth/stations/{world.station_b}", f"/auth/stations/NONE-{world.tag}"),
            (
                f"/auth/organisations/{world.org_b.organisation_id}",
                f"/auth/organisations/{uuid.uuid4()}",
            ),
        ):
            r1 = await http.get(theirs, headers=a)
            r2 = await http.get(nothing, headers=a)
            assert r1.status_code == r2.status_code == 404, (theirs, r1.text)
            assert r1.json() == r2.json()
        # A station id is one namespace, but a taken one does not say whose it is.
        body = {
            "id": world.station_b,
            "name": "squat",
            "connectors": [{"connector_id": 1, "max_power_w": 11000}],
        }
        r = await http.post("/auth/stations", json=body, headers=a)
        assert r.status_code == 409, r.text
        assert r.json()["reason"] == "station_id_unavailable"
        assert str(world.org_b.organisation_id) not in r.text
