"""Organisations, operators, groups and stations: tenancy is enforced, events are emitted."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from argon2 import PasswordHasher
from auth_svc.seed import seed_demo

pytestmark = pytest.mark.infra

PASSWORD = "granite-otter-lantern-7"
STATION_SECRET = "a-station-secret-0001"


async def _operator_of(auth: Any, admin: dict[str, str], org: str, email: str) -> dict[str, Any]:
    created = await auth.client.post("/auth/organisations", headers=admin, json={"name": org})
    assert created.status_code == 201, created.text
    org_id = created.json()["id"]
    user = await auth.client.post(
        "/auth/users",
        headers=admin,
        json={"email": email, "password": PASSWORD, "role": "operator", "organisation_id": org_id},
    )
    assert user.status_code == 201, user.text
    return {"org_id": org_id, "headers": await auth.bearer(email, PASSWORD)}


def _station(station_id: str) -> dict[str, Any]:
    return {
        "id": station_id,
        "name": f"Station {station_id}",
        "connectors": [
            {"connector_id": 1, "max_power_w": 22000},
            {"connector_id": 2, "max_power_w": 22000, "power_type": "AC_3_PHASE"},
        ],
        "location": {"latitude": 52.5, "longitude": 13.4, "address": "Somewhere 1"},
    }


async def test_operators_manage_their_own_stations_only(auth) -> None:
    admin = await auth.admin()
    a = await _operator_of(auth, admin, "Org A", "op-a@example.com")
    b = await _operator_of(auth, admin, "Org B", "op-b@example.com")

    claims = jwt.decode(
        a["headers"]["Authorization"].split()[1], options={"verify_signature": False}
    )
    assert claims["org"] == a["org_id"] and claims["roles"] == ["operator"]

    created = await auth.client.post("/auth/stations", headers=a["headers"], json=_station("A-1"))
    assert created.status_code == 201, created.text
    assert created.json()["organisation_id"] == a["org_id"]
    credential = await auth.client.put(
        "/auth/stations/A-1/credentials",
        headers=a["headers"],
        json={"password": STATION_SECRET, "security_profile": 2},
    )
    assert credential.status_code == 204

    # Operator B can neither see nor change A's station, nor act for A's organisation.
    assert (await auth.client.get("/auth/stations/A-1", headers=b["headers"])).status_code == 404
    assert (await auth.client.get("/auth/stations", headers=b["headers"])).json() == []
    hijack = await auth.client.put(
        "/auth/stations/A-1/credentials",
        headers=b["headers"],
        json={"password": "b-takes-over-station-1", "security_profile": 1},
    )
    assert hijack.status_code == 404
    assert hijack.json()["reason"] == "not_found"
    foreign = await auth.client.post(
        "/auth/stations",
        headers=b["headers"],
        json={**_station("B-9"), "organisation_id": a["org_id"]},
    )
    assert foreign.status_code == 404
    org_a = await auth.client.get(f"/auth/organisations/{a['org_id']}", headers=b["headers"])
    assert org_a.status_code == 404
    taken = await auth.client.post("/auth/stations", headers=b["headers"], json=_station("A-1"))
    assert taken.status_code == 409
    assert taken.json()["reason"] == "station_id_unavailable"

    listed = (await auth.client.get("/auth/stations", headers=a["headers"])).json()
    assert [s["id"] for s in listed] == ["A-1"]
    assert listed[0]["security_profile"] == 2

    events = await auth.events(until="StationCredentialSet")
    types = [e.type for e in events]
    assert types.count("OrganisationCreated") == 2
    registered = next(e for e in events if e.type == "StationRegistered")
    assert registered.aggregate_id == "A-1"
    assert registered.payload["organisation_id"] == a["org_id"]
    assert len(registered.payload["connectors"]) == 2
    credential_set = [e for e in events if e.type == "StationCredentialSet"]
    assert len(credential_set) == 1  # B's attempt changed nothing
    hashed = credential_set[0].payload["password_hash"]
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(hashed, STATION_SECRET)
    assert STATION_SECRET not in str([e.payload for e in events])


async def test_station_input_is_validated(auth) -> None:
    admin = await auth.admin()
    a = await _operator_of(auth, admin, "Org V", "op-v@example.com")
    cases = [
        {**_station("V-1"), "connectors": []},
        {**_station("V-1"), "connectors": [{"connector_id": 0, "max_power_w": 1}]},
        {**_station("V-1"), "connectors": [{"connector_id": 1, "max_power_w": -5}]},
        {**_station("bad/id")},
        {**_station("V-1"), "location": {"latitude": 123}},
        {
            **_station("V-1"),
            "connectors": [
                {"connector_id": 1, "max_power_w": 1000},
                {"connector_id": 1, "max_power_w": 1000},
            ],
        },
    ]
    for body in cases:
        response = await auth.client.post("/auth/stations", headers=a["headers"], json=body)
        assert response.status_code == 422, (body, response.text)
        assert "reason" in response.json()
    assert (
        await auth.client.post("/auth/stations", headers=a["headers"], json=_station("V-1"))
    ).status_code == 201
    for body in (
        {"password": "short", "security_profile": 1},
        {"password": "with spaces in the password", "security_profile": 1},
        {"password": STATION_SECRET, "security_profile": 3},
    ):
        response = await auth.client.put(
            "/auth/stations/V-1/credentials", headers=a["headers"], json=body
        )
        assert response.status_code == 422, (body, response.text)


async def test_groups_are_owned_by_one_organisation_and_reach_the_token(auth) -> None:
    admin = await auth.admin()
    a = await _operator_of(auth, admin, "Org GA", "op-ga@example.com")
    b = await _operator_of(auth, admin, "Org GB", "op-gb@example.com")
    colleague = await auth.client.post(
        "/auth/users",
        headers=admin,
        json={
            "email": "gina@example.com",
            "password": PASSWORD,
            "role": "operator",
            "organisation_id": a["org_id"],
        },
    )
    assert colleague.status_code == 201, colleague.text

    assert (
        await auth.client.post("/auth/groups", headers=a["headers"], json={"name": "staff"})
    ).status_code == 201
    added = await auth.client.post(
        "/auth/groups/staff/members", headers=a["headers"], json={"email": "gina@example.com"}
    )
    assert added.status_code == 204
    # B cannot grant A's group, nor take it over by name.
    grant = await auth.client.post(
        "/auth/groups/staff/members", headers=b["headers"], json={"email": "gina@example.com"}
    )
    assert grant.status_code == 404
    clash = await auth.client.post("/auth/groups", headers=b["headers"], json={"name": "staff"})
    own = await auth.client.post("/auth/groups", headers=a["headers"], json={"name": "staff"})
    assert clash.status_code == own.status_code == 409
    assert clash.json() == own.json()
    assert clash.json()["reason"] == "group_name_unavailable"
    assert (await auth.client.get("/auth/groups", headers=b["headers"])).json() == []
    groups = (await auth.client.get("/auth/groups", headers=a["headers"])).json()
    assert groups == [{"name": "staff", "members": ["gina@example.com"]}]

    token = (await auth.login("gina@example.com", PASSWORD))["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["groups"] == ["staff"]

    removed = await auth.client.delete(
        "/auth/groups/staff/members/gina@example.com", headers=a["headers"]
    )
    assert removed.status_code == 204
    token = (await auth.login("gina@example.com", PASSWORD))["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["groups"] == []

    driver = await auth.bearer("op-gb@example.com", PASSWORD)
    claims = jwt.decode(driver["Authorization"].split()[1], options={"verify_signature": False})
    assert claims["groups"] == []


async def test_a_group_enrols_only_its_own_organisation_and_enumerates_nothing(
    auth, verified_driver
) -> None:
    admin = await auth.admin()
    a = await _operator_of(auth, admin, "Org EA", "op-ea@example.com")
    await _operator_of(auth, admin, "Org EB", "op-eb@example.com")
    await verified_driver("hugo@example.com", PASSWORD)
    created = await auth.client.post("/auth/groups", headers=a["headers"], json={"name": "a-crew"})
    assert created.status_code == 201, created.text

    # Another organisation's operator, the admin, a driver and an unknown address: one answer,
    # from the group's operator and from the admin alike.
    answers = []
    for who in (a["headers"], admin):
        for email in (
            "op-eb@example.com",
            "root@plugpay.test",
            "hugo@example.com",
            "nobody-at-all@example.com",
        ):
            response = await auth.client.post(
                "/auth/groups/a-crew/members", headers=who, json={"email": email}
            )
            answers.append((response.status_code, response.json()))
    assert (
        answers
        == [
            (
                202,
                {
                    "status": "invitation_sent",
                    "message": "if this account can join the group, an invitation is on its way",
                },
            )
        ]
        * 8
    )
    listed = (await auth.client.get("/auth/groups", headers=a["headers"])).json()
    assert listed == [{"name": "a-crew", "members": []}]
    # Nobody's token changed: the foreign operator and the admin are in no group...
    for email, password in (("op-eb@example.com", PASSWORD), ("root@plugpay.test", None)):
        headers = await auth.admin() if password is None else await auth.bearer(email, password)
        me = (await auth.client.get("/auth/me", headers=headers)).json()
        assert me["groups"] == [], email
    # ...only the driver was invited (twice here), and joins by accepting while logged in.
    invited = await auth.mailer.invitations()
    assert [(m.email, m.group) for m in invited] == [("hugo@example.com", "a-crew")] * 2
    token = invited[0].code
    stranger = await auth.client.post(
        "/auth/invitations/accept", headers=await auth.admin(), json={"token": token}
    )
    assert stranger.status_code == 404
    assert stranger.json()["reason"] == "invitation_invalid"
    hugo = await auth.bearer("hugo@example.com", PASSWORD)
    accepted = await auth.client.post(
        "/auth/invitations/accept", headers=hugo, json={"token": token}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"group": "a-crew"}
    again = await auth.client.post("/auth/invitations/accept", headers=hugo, json={"token": token})
    assert again.status_code == 404  # single use
    me = (
        await auth.client.get("/auth/me", headers=await auth.bearer("hugo@example.com", PASSWORD))
    ).json()
    assert me["groups"] == ["a-crew"]
    listed = (await auth.client.get("/auth/groups", headers=a["headers"])).json()
    assert listed == [{"name": "a-crew", "members": ["hugo@example.com"]}]


async def test_objects_outside_the_callers_scope_look_missing(auth) -> None:
    admin = await auth.admin()
    a = await _operator_of(auth, admin, "Org XA", "op-xa@example.com")
    b = await _operator_of(auth, admin, "Org XB", "op-xb@example.com")
    assert (
        await auth.client.post("/auth/stations", headers=a["headers"], json=_station("XA-1"))
    ).status_code == 201
    assert (
        await auth.client.post("/auth/groups", headers=a["headers"], json={"name": "xa-crew"})
    ).status_code == 201
    missing_org = "00000000-0000-4000-8000-000000000000"

    async def answer(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await auth.client.request(method, path, headers=b["headers"], **kwargs)
        return response.status_code, response.json()

    pairs = [
        (
            ("GET", f"/auth/organisations/{a['org_id']}"),
            ("GET", f"/auth/organisations/{missing_org}"),
        ),
        (("GET", "/auth/stations/XA-1"), ("GET", "/auth/stations/XA-404")),
        (
            ("PUT", "/auth/stations/XA-1/credentials", {"json": {"password": STATION_SECRET}}),
            ("PUT", "/auth/stations/XA-404/credentials", {"json": {"password": STATION_SECRET}}),
        ),
        (
            ("POST", "/auth/groups/xa-crew/members", {"json": {"email": "op-xa@example.com"}}),
            ("POST", "/auth/groups/xa-404/members", {"json": {"email": "op-xa@example.com"}}),
        ),
        (
            ("DELETE", "/auth/groups/xa-crew/members/op-xa@example.com"),
            ("DELETE", "/auth/groups/xa-404/members/op-xa@example.com"),
        ),
        (
            ("GET", f"/auth/groups?organisation_id={a['org_id']}"),
            ("GET", f"/auth/groups?organisation_id={missing_org}"),
        ),
        (
            (
                "POST",
                "/auth/stations",
                {"json": {**_station("XB-1"), "organisation_id": a["org_id"]}},
            ),
            (
                "POST",
                "/auth/stations",
                {"json": {**_station("XB-2"), "organisation_id": missing_org}},
            ),
        ),
    ]
    for theirs, nothing in pairs:
        foreign = await answer(*theirs[:2], **(theirs[2] if len(theirs) > 2 else {}))
        absent = await answer(*nothing[:2], **(nothing[2] if len(nothing) > 2 else {}))
        assert foreign[0] == 404, (theirs, foreign)
        assert foreign == absent, (theirs, foreign, absent)
    # A's group is intact.
    groups = (await auth.client.get("/auth/groups", headers=a["headers"])).json()
    assert groups == [{"name": "xa-crew", "members": []}]


async def test_a_taken_station_id_is_refused_alike_whoever_holds_it(auth) -> None:
    admin = await auth.admin()
    a = await _operator_of(auth, admin, "Org SA", "op-sa@example.com")
    b = await _operator_of(auth, admin, "Org SB", "op-sb@example.com")
    assert (
        await auth.client.post("/auth/stations", headers=a["headers"], json=_station("SQ-1"))
    ).status_code == 201
    by_other = await auth.client.post("/auth/stations", headers=b["headers"], json=_station("SQ-1"))
    by_owner = await auth.client.post("/auth/stations", headers=a["headers"], json=_station("SQ-1"))
    assert by_other.status_code == by_owner.status_code == 409
    assert (
        by_other.json()
        == by_owner.json()
        == {
            "reason": "station_id_unavailable",
            "message": "this station id cannot be registered; choose another one",
        }
    )
    assert (await auth.client.get("/auth/stations/SQ-1", headers=a["headers"])).json()[
        "organisation_id"
    ] == a["org_id"]


async def test_seed_demo_is_idempotent_and_emits_through_the_outbox(auth) -> None:
    database = auth.app.state.runtime.database
    async with database.write() as session:
        first = await seed_demo(session, ctx=auth.app.state.auth)
    async with database.write() as session:
        second = await seed_demo(session, ctx=auth.app.state.auth)
    assert first == second

    operator = await auth.bearer("operator@example.com", "demo-password-1")
    stations = (await auth.client.get("/auth/stations", headers=operator)).json()
    assert [(s["id"], len(s["connectors"])) for s in stations] == [
        ("ST-0001", 2),
        ("ST-0002", 1),
        ("ST-0003", 1),
    ]
    assert stations[1]["connectors"][0]["power_type"] == "DC"
    me = (await auth.client.get("/auth/me", headers=operator)).json()
    assert me["groups"] == ["staff"] and me["organisation_id"] == str(first.organisation_id)
    for email in ("driver@example.com", "broke@example.com"):
        driver = (await auth.login(email, "demo-password-1"))["access_token"]
        claims = jwt.decode(driver, options={"verify_signature": False})
        assert claims["email_verified"] is True and claims["roles"] == ["driver"]

    events = await auth.events(until="StationCredentialSet", count=3)
    types = [e.type for e in events]
    assert types.count("StationRegistered") == 3
    assert types.count("StationCredentialSet") == 3
    assert types.count("OrganisationCreated") == 1
    hashes = [e.payload["password_hash"] for e in events if e.type == "StationCredentialSet"]
    assert all(PasswordHasher().verify(h, "demo-station-secret") for h in hashes)
