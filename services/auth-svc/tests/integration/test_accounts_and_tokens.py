"""auth-svc's API against a real PostgreSQL: accounts, login, tokens, keys."""

from __future__ import annotations

import time

import jwt
import pytest
from plugpay_platform.security import TokenVerifier

pytestmark = pytest.mark.infra

PASSWORD = "granite-otter-lantern-7"


async def test_register_verify_login_me_and_events(auth, last_verification_code) -> None:
    response = await auth.client.post(
        "/auth/register", json={"email": " Alice@Example.com ", "password": PASSWORD}
    )
    assert response.status_code == 202, response.text

    tokens = await auth.login("alice@example.com", PASSWORD)
    me = await auth.client.get(
        "/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email_verified"] is False
    assert me.json()["roles"] == ["driver"]

    # An expired or lost link can be replaced; the older one stays usable until it expires.
    resent = await auth.client.post("/auth/verify/resend", json={"email": "alice@example.com"})
    assert resent.status_code == 202
    nobody = await auth.client.post("/auth/verify/resend", json={"email": "nobody@example.com"})
    assert nobody.json() == resent.json()
    code = await last_verification_code()
    assert [m.email for m in await auth.mailer.sent()] == ["alice@example.com"] * 2
    # The code travels sealed: the event log (kept forever, read by analysts) never holds it.
    identity = [e.model_dump_json() for e in await auth.events("EmailVerificationRequested")]
    assert identity and not [e for e in identity if code in e]
    assert (await auth.client.post("/auth/verify", json={"token": code})).status_code == 200
    # Single use.
    again = await auth.client.post("/auth/verify", json={"token": code})
    assert again.status_code == 400
    assert again.json()["reason"] == "verification_used"

    tokens = await auth.login("alice@example.com", PASSWORD)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["email_verified"] is True
    assert claims["iss"] == "plugpay-auth" and claims["aud"] == "plugpay"
    assert claims["exp"] - claims["iat"] == 900
    assert {"sub", "roles", "groups", "iat", "nbf", "exp", "jti"} <= claims.keys()
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "EdDSA"
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900

    events = await auth.events(until="UserVerified")
    user_id = me.json()["user_id"]
    mine = [e.type for e in events if e.aggregate_id == user_id]
    assert mine == [
        "UserRegistered",
        "EmailVerificationRequested",
        "EmailVerificationRequested",
        "UserVerified",
    ]
    # The link's code never travels in an event.
    assert all(code not in e.model_dump_json() for e in events)


async def test_register_refuses_weak_and_answers_alike_for_existing(auth) -> None:
    for weak in ("short1", "password123", "P@ssw0rd", "qwertyuiop"):
        response = await auth.client.post(
            "/auth/register", json={"email": "bob@example.com", "password": weak}
        )
        assert response.status_code == 422, weak
        assert response.json()["reason"] == "weak_password"
    first = await auth.client.post(
        "/auth/register", json={"email": "bob@example.com", "password": PASSWORD}
    )
    second = await auth.client.post(
        "/auth/register", json={"email": "bob@example.com", "password": PASSWORD + "x"}
    )
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()


async def test_unknown_email_and_wrong_password_look_alike(auth, verified_driver) -> None:
    await verified_driver("carol@example.com", PASSWORD)

    async def attempt(email: str) -> tuple[int, dict[str, str], float]:
        start = time.perf_counter()
        response = await auth.client.post(
            "/auth/token", data={"username": email, "password": "not-the-password-1"}
        )
        return response.status_code, response.json(), time.perf_counter() - start

    # Three of each (below the throttle), the fastest counts: robust against a busy machine.
    wrong = [await attempt("carol@example.com") for _ in range(3)]
    unknown = [await attempt("nobody@example.com") for _ in range(3)]
    answer = (
        401,
        {"reason": "invalid_credentials", "message": "the email or the password is wrong"},
    )
    assert all(a[:2] == answer for a in wrong + unknown)
    # Both paths run one argon2id verification (OWASP parameters take tens of milliseconds).
    fastest_wrong = min(a[2] for a in wrong)
    fastest_unknown = min(a[2] for a in unknown)
    assert fastest_wrong > 0.01 and fastest_unknown > 0.01
    assert 0.33 < fastest_unknown / fastest_wrong < 3


async def test_throttling_engages_per_account_and_address_not_elsewhere(
    auth, verified_driver
) -> None:
    await verified_driver("dave@example.com", PASSWORD)
    statuses = []
    for _ in range(7):
        response = await auth.client.post(
            "/auth/token", data={"username": "dave@example.com", "password": "wrong-guess-000"}
        )
        statuses.append(response.status_code)
    assert statuses[:6] == [401] * 6
    assert statuses[6] == 429
    assert response.json()["reason"] == "too_many_attempts"
    assert int(response.headers["Retry-After"]) >= 1
    # Even the right password waits out the window from this address...
    blocked = await auth.client.post(
        "/auth/token", data={"username": "dave@example.com", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    # ...but the owner from another address is not locked out.
    import httpx

    transport = httpx.ASGITransport(app=auth.app, client=("198.51.100.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as owner:
        response = await owner.post(
            "/auth/token", data={"username": "dave@example.com", "password": PASSWORD}
        )
    assert response.status_code == 200, response.text


async def test_refresh_rotates_and_reuse_revokes_the_family(auth, verified_driver) -> None:
    await verified_driver("erin@example.com", PASSWORD)
    first = await auth.login("erin@example.com", PASSWORD)
    second = (
        await auth.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = await auth.client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
    )
    assert third.status_code == 200
    assert third.headers["cache-control"] == "no-store"

    # The first token comes back (a thief's copy): the whole family ends.
    reused = await auth.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["reason"] == "refresh_token_reused"
    latest = await auth.client.post(
        "/auth/refresh", json={"refresh_token": third.json()["refresh_token"]}
    )
    assert latest.status_code == 401
    assert latest.json()["reason"] == "refresh_token_revoked"

    # Another login is a separate family, unaffected; logout ends it.
    other = await auth.login("erin@example.com", PASSWORD)
    logout = await auth.client.post("/auth/logout", json={"refresh_token": other["refresh_token"]})
    assert logout.status_code == 204
    after = await auth.client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert after.status_code == 401


async def test_jwks_rotation_keeps_old_tokens_valid(auth) -> None:
    admin = await auth.admin()
    old_kid = jwt.get_unverified_header(admin["Authorization"].split()[1])["kid"]
    before = (await auth.client.get("/auth/.well-known/jwks.json")).json()
    assert [k["kid"] for k in before["keys"]] == [old_kid]
    assert all("d" not in k for k in before["keys"])  # never the private half

    rotated = await auth.client.post("/auth/admin/signing-keys/rotate", headers=admin)
    assert rotated.status_code == 201
    new_kid = rotated.json()["kid"]
    after = (await auth.client.get("/auth/.well-known/jwks.json")).json()
    assert {k["kid"] for k in after["keys"]} == {old_kid, new_kid}

    # A token signed before the rotation still works; new ones use the new key.
    assert (await auth.client.get("/auth/me", headers=admin)).status_code == 200
    fresh = await auth.admin()
    assert jwt.get_unverified_header(fresh["Authorization"].split()[1])["kid"] == new_kid

    # Other services' verifier (libs/platform) accepts auth-svc's tokens from this JWKS.
    class Published:
        async def jwks(self, *, refresh: bool = False) -> dict[str, object]:
            return after

    verifier = TokenVerifier(Published(), issuer="plugpay-auth", audience="plugpay")
    principal = await verifier.verify(fresh["Authorization"].split()[1])
    assert principal.has("admin") and principal.email_verified


async def test_only_admins_rotate_keys_and_create_accounts(auth, verified_driver) -> None:
    await verified_driver("frank@example.com", PASSWORD)
    driver = await auth.bearer("frank@example.com", PASSWORD)
    assert (
        await auth.client.post("/auth/admin/signing-keys/rotate", headers=driver)
    ).status_code == 403
    response = await auth.client.post(
        "/auth/users",
        headers=driver,
        json={"email": "x@example.com", "password": PASSWORD, "role": "admin"},
    )
    assert response.status_code == 403
    assert response.json()["reason"] == "forbidden"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/auth/register", {"json": {"email": "nope"}}),
        ("POST", "/auth/register", {"content": b"{not json"}),
        ("POST", "/auth/register", {"json": {"email": "a@b.co", "password": "x" * 5000}}),
        ("POST", "/auth/register", {"json": {"email": "no-at-sign", "password": PASSWORD}}),
        ("POST", "/auth/token", {"data": {"username": "a@b.co"}}),
        ("POST", "/auth/token", {"data": {"grant_type": "client_credentials"}}),
        ("POST", "/auth/token", {"json": {"username": "a", "password": "b"}}),
        ("POST", "/auth/refresh", {"json": {"refresh_token": 12}}),
        ("POST", "/auth/refresh", {"json": {"refresh_token": "x" * 40}}),
        ("POST", "/auth/verify", {"json": {"token": "\u0000" * 20}}),
        ("POST", "/auth/logout", {"json": {}}),
        ("GET", "/auth/me", {"headers": {"Authorization": b"Bearer \xe9"}}),
        ("GET", "/auth/me", {"headers": {"Authorization": "Basic abc"}}),
    ],
)
async def test_bad_input_is_4xx_with_reason(auth, method, path, kwargs) -> None:
    response = await auth.client.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    assert {"reason", "message"} <= response.json().keys()


async def test_bootstrap_admin_is_idempotent_and_never_logged(auth, caplog) -> None:
    from auth_svc.app import bootstrap_admin

    runtime = auth.app.state.runtime
    await bootstrap_admin(auth.app.state.auth, runtime, runtime.settings)
    secret = runtime.settings.bootstrap_admin_password
    assert secret.get_secret_value() not in caplog.text
    assert secret.get_secret_value() not in repr(runtime.settings)
    me = (await auth.client.get("/auth/me", headers=await auth.admin())).json()
    assert me["roles"] == ["admin"]
