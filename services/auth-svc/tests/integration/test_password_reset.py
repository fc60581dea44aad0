"""Password reset: the same answer for any address, single use, 30 minutes, every refresh
token revoked, PasswordChanged emitted, and no code in any log line or event."""

from __future__ import annotations

import logging
from typing import Any

from .support import Clock

PASSWORD = "granite-otter-lantern-7"
NEW_PASSWORD = "harbour-violet-compass-4"
EMAIL = "rene@example.com"


async def test_reset_link_expires_after_30_minutes_and_works_once(
    auth: Any, verified_driver: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    auth.app.state.auth.clock = clock
    await verified_driver(EMAIL, PASSWORD)
    old = await auth.login(EMAIL, PASSWORD)

    asked = await auth.client.post("/auth/password/reset/request", json={"email": EMAIL})
    nobody = await auth.client.post(
        "/auth/password/reset/request", json={"email": "nobody@example.com"}
    )
    assert asked.status_code == nobody.status_code == 202
    assert asked.json() == nobody.json()
    (first,) = await auth.mailer.resets()
    assert first.email == EMAIL

    clock.advance(31 * 60)
    late = await auth.client.post(
        "/auth/password/reset", json={"token": first.code, "new_password": NEW_PASSWORD}
    )
    assert (late.status_code, late.json()["reason"]) == (400, "reset_expired")
    unknown = await auth.client.post(
        "/auth/password/reset", json={"token": "x" * 43, "new_password": NEW_PASSWORD}
    )
    assert unknown.json()["reason"] == "reset_invalid"

    await auth.client.post("/auth/password/reset/request", json={"email": EMAIL})
    second = (await auth.mailer.resets())[-1]
    weak = await auth.client.post(
        "/auth/password/reset", json={"token": second.code, "new_password": "password1"}
    )
    assert weak.status_code in (400, 422)
    done = await auth.client.post(
        "/auth/password/reset", json={"token": second.code, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.text
    again = await auth.client.post(
        "/auth/password/reset", json={"token": second.code, "new_password": NEW_PASSWORD}
    )
    assert again.json()["reason"] == "reset_used"

    refused = await auth.client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]})
    assert refused.status_code in (400, 401)
    assert (await auth.client.post(
        "/auth/token", data={"username": EMAIL, "password": PASSWORD}
    )).status_code in (400, 401)  # fmt: skip
    await auth.login(EMAIL, NEW_PASSWORD)

    events = await auth.events("PasswordChanged")
    assert [e.payload["email"] for e in events if e.type == "PasswordChanged"] == [EMAIL]
    dumped = [e.model_dump_json() for e in events]
    for code in (first.code, second.code):
        assert not [e for e in dumped if code in e]
        assert code not in caplog.text


async def test_reset_requests_are_throttled_per_email_whether_or_not_it_has_an_account(
    auth: Any,
) -> None:
    for email in (EMAIL, "ghost@example.com"):
        answers = [
            (await auth.client.post("/auth/password/reset/request", json={"email": email}))
            for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        assert answers[3].json()["reason"] == "too_many_reset_requests"
        assert int(answers[3].headers["Retry-After"]) > 0
