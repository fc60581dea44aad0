"""Guest checkout: a token without an account, bound to one session code, counted per address."""

from __future__ import annotations

import jwt
import pytest
from plugpay_events.session_code import code_binding
from plugpay_platform.security import TokenVerifier

from .support import Clock, from_address

pytestmark = pytest.mark.infra

QR = "https://pay.example/s/" + "A" * 43  # the shape of a QR's URL; session-svc checks the MAC


class Published:
    def __init__(self, document: dict[str, object]) -> None:
        self.document = document

    async def jwks(self, *, refresh: bool = False) -> dict[str, object]:
        return self.document


async def test_a_guest_token_is_bound_to_one_code_and_verifies_like_any_other(auth) -> None:
    response = await auth.client.post("/auth/guest", json={"code": QR})
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert "refresh_token" not in body
    assert body["expires_in"] == auth.app.state.auth.settings.guest_token_ttl_s
    jwks = (await auth.client.get("/auth/.well-known/jwks.json")).json()
    verifier = TokenVerifier(Published(jwks), issuer="plugpay-auth", audience="plugpay")
    principal = await verifier.verify(body["access_token"])
    assert principal.roles == frozenset({"guest"}) and principal.is_guest
    assert principal.guest_code == code_binding(QR)
    # the bare token inside the URL binds alike; another code does not
    assert principal.guest_code == code_binding(QR.rsplit("/s/", 1)[1])
    assert principal.guest_code != code_binding(QR[:-1] + "B")
    assert not principal.email_verified and principal.organisation_id is None
    # each guest is a new payer: nobody else's objects are theirs
    second = (await auth.client.post("/auth/guest", json={"code": QR})).json()["access_token"]
    assert (await verifier.verify(second)).user_id != principal.user_id
    # a guest has no account: it cannot pose as a driver anywhere
    me = await auth.client.get("/auth/me", headers={"Authorization": f"Bearer {second}"})
    assert me.status_code in (401, 403, 404)
    assert jwt.decode(second, options={"verify_signature": False})["roles"] == ["guest"]


async def test_typed_codes_bind_whatever_their_spelling(auth) -> None:
    token = (await auth.client.post("/auth/guest", json={"code": "34-67 9a"})).json()
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["guest_code"] == code_binding("34679A")


@pytest.mark.parametrize("code", ["hello", "12345", "", "x" * 301])
async def test_what_is_no_code_gets_no_token(auth, code: str) -> None:
    response = await auth.client.post("/auth/guest", json={"code": code})
    assert response.status_code in (400, 422), response.text


async def test_guest_tokens_are_rate_limited_per_address(auth_with) -> None:
    async with auth_with(guest_tokens_free_per_address=3) as auth:
        clock = Clock()
        auth.app.state.auth.clock = clock
        async with from_address(auth, "203.0.113.7") as phone:
            statuses = [
                (await phone.post("/auth/guest", json={"code": "34679A"})).status_code
                for _ in range(4)
            ]
            assert statuses == [200] * 4  # three free, the fourth opens a window
            refused = await phone.post("/auth/guest", json={"code": "34679A"})
            assert refused.status_code == 429
            assert refused.json()["reason"] == "too_many_guests"
            assert int(refused.headers["Retry-After"]) == 60
        async with from_address(auth, "198.51.100.8") as other:
            assert (await other.post("/auth/guest", json={"code": "34679A"})).status_code == 200
        clock.advance(60)
        async with from_address(auth, "203.0.113.7") as phone:
            assert (await phone.post("/auth/guest", json={"code": "34679A"})).status_code == 200
