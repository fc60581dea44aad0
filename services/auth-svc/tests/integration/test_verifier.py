"""The platform's token-rejection suite against auth-svc's own protected endpoint (GET /auth/me).

auth-svc trusts its own signing keys (read from its database), so the "trusted" TokenFactory
here signs with auth-svc's active key; the suite's impostors sign with keys of their own.
"""

from __future__ import annotations

import httpx
import pytest
from auth_svc.repository import AuthRepository
from cryptography.hazmat.primitives import serialization
from plugpay_testing.tokens import TokenFactory
from plugpay_testing.verifier_contract import VerifierContract

pytestmark = pytest.mark.infra


class TestAuthSvcVerifier(VerifierContract):
    @pytest.fixture
    def protected(self) -> tuple[str, str]:
        return ("GET", "/auth/me")

    @pytest.fixture
    def client(self, auth) -> httpx.AsyncClient:
        return auth.client

    @pytest.fixture
    async def tokens(self, auth) -> TokenFactory:
        async with auth.app.state.runtime.database.read() as session:
            key = await AuthRepository(session).active_signing_key()
        assert key is not None
        factory = TokenFactory(kid=key.kid)
        factory.private_key = serialization.load_pem_private_key(  # type: ignore[assignment]
            key.private_pem.encode(), password=None
        )
        factory.public_jwk = key.public_jwk
        return factory

    @pytest.fixture
    async def valid_token(self, auth) -> str:
        return (await auth.admin())["Authorization"].split()[1]
