"""Verifying access tokens locally from auth-svc's JWKS, and role checks as dependencies.

Only EdDSA is accepted; ``exp``, ``nbf``, ``iat``, ``aud``, ``iss`` and ``sub`` are checked;
the key comes from our own JWKS by ``kid``, never from the token (no ``jwk``/``jku``/``x5u``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from plugpay_platform.errors import Refusal

ALGORITHMS = ["EdDSA"]


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the token says."""

    user_id: uuid.UUID
    roles: frozenset[str]
    organisation_id: uuid.UUID | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    email_verified: bool = False
    # A guest (no account) may use exactly the session code this digest names
    # (``plugpay_events.session_code.code_binding``); None for everyone else.
    guest_code: str | None = None

    @property
    def is_guest(self) -> bool:
        return "guest" in self.roles

    def has(self, role: str) -> bool:
        return role in self.roles


class KeySource(Protocol):
    """Where verification keys come from (auth-svc's JWKS over HTTP, or in-process)."""

    async def jwks(self, *, refresh: bool = False) -> dict[str, Any]: ...


class HttpJwks:
    """Fetches and caches a JWKS document; refetches when an unknown key id appears."""

    def __init__(
        self, url: str, *, ttl_s: float = 300.0, min_refresh_interval_s: float = 10.0
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.min_refresh_interval_s = min_refresh_interval_s
        self._cached: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = self._cached is None or age > self.ttl_s
            # Unknown kids trigger a refresh, but not more often than this: no fetch storms.
            if stale or (refresh and age > self.min_refresh_interval_s):
                async with httpx.AsyncClient(timeout=5.0) as client:
                    response = await client.get(self.url)
                    response.raise_for_status()
                    self._cached = response.json()
                    self._fetched_at = time.monotonic()
            assert self._cached is not None
            return self._cached


class StaticJwks:
    """Keys given in-process (the embedded mode, tests)."""

    def __init__(self, provider: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self.provider = provider

    async def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        return await self.provider()


class TokenVerifier:
    """Verifies access tokens; every service has one, built from settings."""

    def __init__(self, keys: KeySource, *, issuer: str, audience: str, leeway_s: int = 30) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        # Parsing a JWK builds a key object (measurable per request): kept per key id, reused
        # only while the document still has the very same key under that id.
        self._parsed: dict[str, tuple[dict[str, Any], jwt.PyJWK]] = {}

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        for refresh in (False, True):
            document = await self.keys.jwks(refresh=refresh)
            for key in document.get("keys", []):
                if key.get("kid") == kid:
                    cached = self._parsed.get(kid)
                    if cached is not None and cached[0] == key:
                        return cached[1]
                    parsed = jwt.PyJWK(key)
                    self._parsed[kid] = (dict(key), parsed)
                    return parsed
        raise Refusal("token_invalid", "unknown signing key", status_code=401)

    async def verify(self, token: str) -> Principal:
        """Return the principal of a valid token or refuse with 401."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Refusal("token_invalid", "malformed token", status_code=401) from error
        if header.get("alg") not in ALGORITHMS:
            raise Refusal("token_invalid", "algorithm not allowed", status_code=401)
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Refusal("token_invalid", "token has no key id", status_code=401)
        key = await self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise Refusal(
                "token_expired", "the access token has expired", status_code=401
            ) from error
        except jwt.PyJWTError as error:
            raise Refusal(
                "token_invalid", "the access token is not valid", status_code=401
            ) from error
        try:
            org = claims.get("org")
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                roles=frozenset(claims.get("roles", [])),
                organisation_id=uuid.UUID(org) if org else None,
                groups=frozenset(claims.get("groups", [])),
                email_verified=bool(claims.get("email_verified", False)),
                guest_code=_guest_code(claims),
            )
        except (ValueError, TypeError) as error:
            raise Refusal(
                "token_invalid", "the token's claims are malformed", status_code=401
            ) from error


def _guest_code(claims: dict[str, Any]) -> str | None:
    code = claims.get("guest_code")
    if "guest" in claims.get("roles", []) and not isinstance(code, str):
        # A guest token without its one code would be a capability without a bound.
        raise ValueError("a guest token names its session code")
    return code if isinstance(code, str) else None


_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller, or 401."""
    token = credentials.credentials if credentials else None
    if not token:
        raise Refusal(
            "unauthenticated",
            "a bearer token is required",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(token)


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers with any of ``roles`` (admins always)."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not (principal.roles & {*roles, "admin"}):
            raise Refusal("forbidden", f"this needs the role {' or '.join(roles)}", status_code=403)
        return principal

    return dependency


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentDriver = Annotated[Principal, Depends(require_role("driver"))]
# A driver, or a guest paying at one charger without an account (its token is bound to a code).
CurrentPayer = Annotated[Principal, Depends(require_role("driver", "guest"))]
CurrentOperator = Annotated[Principal, Depends(require_role("operator"))]
CurrentAnalyst = Annotated[Principal, Depends(require_role("analyst", "operator"))]
