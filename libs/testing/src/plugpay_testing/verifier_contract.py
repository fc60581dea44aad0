"""The token-verifier suite every service runs against one of its protected endpoints."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from plugpay_testing.tokens import TokenFactory


def _claims() -> dict[str, Any]:
    """Claims a service accepts from auth-svc: the forgeries differ only in how they are signed."""
    now = int(time.time())
    return {
        "sub": "00000000-0000-0000-0000-000000000001",
        "aud": "plugpay",
        "iss": "plugpay-auth",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
    }


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class VerifierContract:
    """Subclass with fixtures ``client`` (an httpx client on the service), ``tokens`` (the
    TokenFactory the service trusts) and ``protected`` (method, path) needing a valid token."""

    @pytest.fixture
    def protected(self) -> tuple[str, str]:
        raise NotImplementedError

    async def _call(
        self, client: httpx.AsyncClient, protected: tuple[str, str], token: str | None
    ) -> httpx.Response:
        method, path = protected
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await client.request(method, path, headers=headers)

    async def _refused(
        self, client: httpx.AsyncClient, protected: tuple[str, str], token: str | None
    ) -> None:
        response = await self._call(client, protected, token)
        assert response.status_code == 401, response.text
        assert response.json()["reason"] in {"unauthenticated", "token_invalid", "token_expired"}

    async def test_missing_token(
        self, client: httpx.AsyncClient, protected: tuple[str, str]
    ) -> None:
        await self._refused(client, protected, None)

    async def test_expired_token(
        self, client: httpx.AsyncClient, tokens: TokenFactory, protected: tuple[str, str]
    ) -> None:
        past = int(time.time()) - 3600
        await self._refused(client, protected, tokens.token(iat=past, nbf=past, exp=past + 60))

    async def test_tampered_token(
        self, client: httpx.AsyncClient, tokens: TokenFactory, protected: tuple[str, str]
    ) -> None:
        header, payload, signature = tokens.token().split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["roles"] = ["admin"]
        await self._refused(client, protected, f"{header}.{_b64(claims)}.{signature}")

    async def test_wrong_audience(
        self, client: httpx.AsyncClient, tokens: TokenFactory, protected: tuple[str, str]
    ) -> None:
        await self._refused(client, protected, tokens.token(aud="someone-else"))

    async def test_wrong_issuer(
        self, client: httpx.AsyncClient, tokens: TokenFactory, protected: tuple[str, str]
    ) -> None:
        await self._refused(client, protected, tokens.token(iss="https://evil.example"))

    async def test_alg_none(
        self, client: httpx.AsyncClient, tokens: TokenFactory, protected: tuple[str, str]
    ) -> None:
        _, payload, _ = tokens.token().split(".")
        await self._refused(
            client, protected, f"{_b64({'alg': 'none', 'kid': tokens.kid})}.{payload}."
        )

    async def test_wrong_key(
        self, client: httpx.AsyncClient, tokens: TokenFactory, protected: tuple[str, str]
    ) -> None:
        impostor = TokenFactory(kid=tokens.kid)  # same kid, different key
        await self._refused(client, protected, impostor.token())

    async def test_embedded_jwk_is_ignored(
        self, client: httpx.AsyncClient, tokens: TokenFactory, protected: tuple[str, str]
    ) -> None:
        impostor = TokenFactory(kid="attacker")
        import jwt as pyjwt

        forged = pyjwt.encode(
            _claims(),
            impostor.private_key,
            algorithm="EdDSA",
            headers={"kid": "attacker", "jwk": impostor.public_jwk},
        )
        await self._refused(client, protected, forged)

    async def test_hs256_with_public_key_as_secret(
        self, client: httpx.AsyncClient, tokens: TokenFactory, protected: tuple[str, str]
    ) -> None:
        import hashlib
        import hmac

        # Signed by hand: PyJWT itself refuses a JWK as an HMAC secret, an attacker would not.
        secret = json.dumps(tokens.public_jwk).encode()
        signing_input = ".".join(
            (
                _b64({"alg": "HS256", "typ": "JWT", "kid": tokens.kid}),
                _b64(_claims()),
            )
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        await self._refused(client, protected, f"{signing_input}.{signature}")

    async def test_valid_token_is_accepted(
        self,
        client: httpx.AsyncClient,
        tokens: TokenFactory,
        protected: tuple[str, str],
        valid_token: str,
    ) -> None:
        response = await self._call(client, protected, valid_token)
        assert response.status_code not in (401, 403), response.text
