"""Security tests against the isolated stack: session codes, tokens, station identity,
brute-force limits. (The authorisation matrix is test_authz_matrix.py; logs test_logs.py.)"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import support
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from plugpay_events.session_code import (
    generate_signing_key,
    new_typed_code,
    sign_session_code,
    station_tag,
)
from plugpay_simulator.stations import SimulatedStation

pytestmark = pytest.mark.infra


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _code(station_id: str, connector: int = 1) -> tuple[SimulatedStation, dict[str, Any]]:
    sim = SimulatedStation(
        station_id, support.BASE_URL.replace("http", "ws"), support.STATION_PASSWORD
    )
    await sim.connect()
    return sim, await sim.request_code(connector)


async def _scan(http: httpx.AsyncClient, token: str, code: str) -> httpx.Response:
    """Scan (a brand-new code is accepted at once)."""
    return await http.post("/sessions/scan", json={"code": code}, headers=support.bearer(token))


async def _private_code_key() -> dict[str, Any]:
    return json.loads((support.STATE / "secrets" / "code-signing-key.json").read_text())


# --- session codes --------------------------------------------------------------------------


async def test_session_codes_forged_tampered_replayed_expired_elsewhere(
    world: support.World,
) -> None:
    driver, other = world.drivers[0], world.drivers[1]
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=20) as http:
        sim, reply = await _code(world.stations[0])
        try:
            token = reply["qr"].rsplit("/s/", 1)[1]
            # forged: a MAC key that is not the gateway's
            forged, _ = sign_session_code(
                generate_signing_key(),
                station_id=world.stations[0],
                connector_id=1,
                session_started_at=datetime.now(UTC),
            )
            r = await _scan(http, driver.token, forged)
            assert r.status_code in (400, 403, 409, 422) and r.json()["reason"] == "code_invalid", (
                r.text
            )
            # tampered: the code names another connector (byte 15), MAC kept
            raw = bytearray(base64.urlsafe_b64decode(token))
            raw[15] = raw[15] % 255 + 1
            tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
            r = await _scan(http, driver.token, tampered)
            assert r.json()["reason"] == "code_invalid", r.text
            # garbage
            r = await _scan(http, driver.token, "not-a-code-at-all")
            assert 400 <= r.status_code < 500
            # the real one works once...
            r = await _scan(http, driver.token, reply["qr"])
            assert r.status_code == 202, r.text
            # ...and never again: replayed by the same driver or another one
            for who in (driver, other):
                r = await _scan(http, who.token, reply["qr"])
                assert r.status_code == 409 and r.json()["reason"] == "code_used", r.text
            # the typed code of a used session is used too
            r = await _scan(http, other.token, reply["code"])
            assert r.status_code in (404, 409, 410) and r.json()["reason"] in (
                "code_used",
                "code_invalid",
                "code_unknown",
                "code_expired",
            ), r.text
        finally:
            await sim.close()
        # "used at another station": a real code of station 2 whose station tag (bytes 16-18)
        # is made to name station 1, MAC kept → refused (the MAC binds the full station id).
        key = await _private_code_key()
        sim2, reply2 = await _code(world.stations[1])
        try:
            raw = bytearray(base64.urlsafe_b64decode(reply2["qr"].rsplit("/s/", 1)[1]))
            raw[16:19] = station_tag(world.stations[0])
            moved = base64.urlsafe_b64encode(bytes(raw)).decode()
            r = await _scan(http, driver.token, moved)
            assert r.status_code >= 400 and r.status_code < 500, r.text
            assert r.json()["reason"] in ("code_invalid", "code_used"), r.text
            # expired: correctly signed, but from long ago
            old, _ = sign_session_code(
                key,
                station_id=world.stations[1],
                connector_id=1,
                session_started_at=datetime.now(UTC) - timedelta(hours=2),
            )
            r = await _scan(http, driver.token, old)
            assert r.json()["reason"] in ("code_expired", "code_invalid"), r.text
        finally:
            await sim2.close()


# --- access tokens ----------------------------------------------------------------------------


async def _auth_private_key() -> tuple[str, Any]:
    rows = await support.query(
        f"auth_{support.STACK_NAME}",
        "SELECT kid, private_pem FROM signing_keys WHERE retired_at IS NULL"
        " ORDER BY created_at DESC LIMIT 1",
    )
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return rows[0]["kid"], load_pem_private_key(rows[0]["private_pem"].encode(), None)


async def test_forged_tokens_are_refused(world: support.World) -> None:
    driver = world.drivers[0]
    real = jwt.decode(driver.token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(driver.token)["kid"]
    now = int(time.time())
    kid_, private = await _auth_private_key()
    assert kid_ == kid
    stranger = Ed25519PrivateKey.generate()  # a well-formed key that is not auth-svc's
    admin_claims = dict(real, roles=["admin", "operator", "driver"])
    tokens = {
        "alg_none": f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}."
        f"{_b64(json.dumps(admin_claims).encode())}.",
        "alg_hs256_with_public_key": jwt.encode(
            admin_claims, "x" * 32, algorithm="HS256", headers={"kid": kid}
        ),
        "wrong_key": jwt.encode(admin_claims, stranger, algorithm="EdDSA", headers={"kid": kid}),
        "unknown_kid": jwt.encode(
            admin_claims, stranger, algorithm="EdDSA", headers={"kid": "nope"}
        ),
        "expired": jwt.encode(
            dict(real, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
            private,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "wrong_audience": jwt.encode(
            dict(real, aud="someone-else"), private, algorithm="EdDSA", headers={"kid": kid}
        ),
        "wrong_issuer": jwt.encode(
            dict(real, iss="evil"), private, algorithm="EdDSA", headers={"kid": kid}
        ),
        "not_yet_valid": jwt.encode(
            dict(real, nbf=now + 3600, iat=now + 3600, exp=now + 7200),
            private,
            algorithm="EdDSA",
            headers={"kid": kid},
        ),
        "garbage": "eyJhbGciOi.garbage.x",
    }
    checks = [
        ("GET", "/auth/me"),
        ("GET", "/sessions"),
        ("GET", "/billing/account"),
        ("GET", "/pricing/tariffs"),
        ("GET", "/auth/organisations"),
    ]
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=20) as http:
        r = await http.get("/auth/me", headers=support.bearer(driver.token))
        assert r.status_code == 200
        for name, token in tokens.items():
            for method, path in checks:
                r = await http.request(method, path, headers=support.bearer(token))
                assert r.status_code == 401, (name, path, r.status_code, r.text)
        # the same signing key with the right claims does work (the test is meaningful)
        ok = jwt.encode(
            dict(real, iat=now, nbf=now, exp=now + 300),
            private,
            algorithm="EdDSA",
            headers={"kid": kid},
        )
        assert (await http.get("/auth/me", headers=support.bearer(ok))).status_code == 200


async def test_stolen_refresh_token_reuse_revokes_the_family(world: support.World) -> None:
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=20) as http:
        email = f"rel-{world.tag}-refresh@example.com"
        await support.create_user(http, world.admin_token, email, "driver")
        first = await support.login(http, email, support.TEST_PASSWORD)
        stolen = first["refresh_token"]
        r = await http.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": stolen}
        )
        assert r.status_code == 200, r.text
        legit = r.json()["refresh_token"]
        # the thief replays the old one: refused
        r = await http.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": stolen}
        )
        assert r.status_code in (400, 401), r.text
        # and the whole family is revoked: the legitimate holder's newer token dies too
        r = await http.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": legit}
        )
        assert r.status_code in (400, 401), r.text
        r = await http.post("/auth/refresh", json={"refresh_token": "x" * 43})
        assert r.status_code in (400, 401), r.text


# --- station impersonation --------------------------------------------------------------------


async def _handshake(station_id: str, user: str, password: str) -> int:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    url = f"{support.BASE_URL.replace('http', 'ws')}/ocpp/{station_id}"
    try:
        async with websockets.connect(
            url,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Basic {token}"},
            open_timeout=10,
        ):
            return 101
    except websockets.exceptions.InvalidStatus as error:
        return error.response.status_code


async def test_station_impersonation(world: support.World) -> None:
    a, b = world.stations[0], world.stations[1]
    assert await _handshake(a, a, support.STATION_PASSWORD) == 101
    assert await _handshake(a, a, "wrong-password") == 401
    # another station's id in the credentials / in the URL
    assert await _handshake(a, b, support.STATION_PASSWORD) == 401
    assert await _handshake(world.station_b, world.station_b, "guess") == 401
    # unknown station
    assert await _handshake(f"NOPE-{world.tag}", f"NOPE-{world.tag}", "x") == 401
    # no credentials at all
    url = f"{support.BASE_URL.replace('http', 'ws')}/ocpp/{a}"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(url, subprotocols=["ocpp1.6"], open_timeout=10):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 401
    # the display page and QR images need the station's own credentials too
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=20) as http:
        r = await http.get(f"/stations/{a}/display", auth=(b, support.STATION_PASSWORD))
        assert r.status_code == 401
        r = await http.get(f"/stations/{a}/display", auth=(a, "wrong"))
        assert r.status_code == 401


# --- brute force ---------------------------------------------------------------------------------


async def test_login_brute_force_is_throttled(world: support.World) -> None:
    email = world.drivers[-1].email
    # A private client address per run (uvicorn trusts X-Forwarded-For from loopback) so the
    # lock-out cannot hit other tests; hit auth-svc directly.
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    port = support.SERVICES["auth-svc"][0]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
        codes = []
        for i in range(30):
            r = await http.post(
                "/auth/token",
                data={"username": email, "password": f"guess-{i}"},
                headers={"X-Forwarded-For": ip},
            )
            codes.append(r.status_code)
            if r.status_code == 429:
                break
        assert 429 in codes, codes
        assert set(codes) <= {401, 429}
        assert "Retry-After" in r.headers
        # even the right password is refused while locked (no oracle)
        r = await http.post(
            "/auth/token",
            data={"username": email, "password": support.TEST_PASSWORD},
            headers={"X-Forwarded-For": ip},
        )
        assert r.status_code == 429


async def test_typed_code_guessing_is_throttled(world: support.World) -> None:
    driver = world.drivers[-1]
    async with httpx.AsyncClient(base_url=support.BASE_URL, timeout=20) as http:
        codes = []
        for _ in range(40):
            guess = new_typed_code()
            r = await http.post(
                "/sessions/scan", json={"code": guess}, headers=support.bearer(driver.token)
            )
            codes.append(r.status_code)
            if r.status_code == 429:
                break
        assert codes[-1] == 429, codes
        assert all(c in (404, 409, 400, 410, 422, 429) for c in codes), codes
        assert "Retry-After" in r.headers
