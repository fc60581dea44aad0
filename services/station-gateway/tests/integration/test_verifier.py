"""The platform's token-rejection suite against every route of the gateway that takes a bearer
token: the operators' live view and commands. (Stations authenticate with their OCPP Basic
credentials instead; test_ocpp16/test_ocpp201 cover those.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from plugpay_testing.tokens import TokenFactory
from plugpay_testing.verifier_contract import VerifierContract

from ..harness_station import ORG

pytestmark = pytest.mark.infra


OPERATOR_ROUTES = [
    ("GET", "/stations"),
    ("GET", "/stations/VER-1/status"),
    ("POST", "/stations/VER-1/commands"),
    ("GET", "/stations/VER-1/commands/1"),
]


class TestGatewayVerifiesTokens(VerifierContract):
    @pytest.fixture(params=OPERATOR_ROUTES, ids=[f"{m} {p}" for m, p in OPERATOR_ROUTES])
    def protected(self, request: pytest.FixtureRequest) -> tuple[str, str]:
        route: tuple[str, str] = request.param
        return route

    @pytest.fixture
    async def client(self, harness: Any) -> AsyncIterator[httpx.AsyncClient]:
        gateway = await harness.start_gateway()
        # A station of the operator's organisation: a valid token gets past the checks to it.
        await harness.register("VER-1")
        async with httpx.AsyncClient(base_url=gateway.http, timeout=10) as client:
            yield client

    @pytest.fixture
    def tokens(self, harness: Any) -> TokenFactory:
        factory: TokenFactory = harness.tokens
        return factory

    @pytest.fixture
    def valid_token(self, tokens: TokenFactory) -> str:
        return tokens.token(roles=("operator",), organisation_id=ORG)
